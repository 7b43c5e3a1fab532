"""Resident identity numbers (居民身份证号码, GB 11643): checked, then kept only as a salted hash.

One account per identity: the number's keyed digest is what makes two registrations the same
person. The number itself is never stored, logged or published.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: 17 digits and a check character (a digit or ``X``).
IDENTITY_NUMBER_PATTERN = r"^[0-9]{17}[0-9X]$"
#: ISO 7064 MOD 11-2: the weight of each of the first 17 digits (2^(17-i) mod 11).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
#: The check character for each remainder of the weighted sum mod 11.
_CHECK = "10X98765432"


def check_character(first_17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if not re.fullmatch(r"[0-9]{17}", first_17):
        raise ValueError("17 digits are needed")
    total = sum(int(d) * w for d, w in zip(first_17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def identity_number_problem(number: str) -> str | None:
    """Why ``number`` is not a valid identity number, or ``None`` when it is."""
    if not re.fullmatch(IDENTITY_NUMBER_PATTERN, number):
        return "an identity number is 17 digits and a check digit or X"
    if check_character(number[:17]) != number[17]:
        return "the check digit of the identity number is wrong"
    return None


def identity_digest(salt: str, number: str) -> str:
    """The salted digest (HMAC-SHA256, hex) that stands for the identity number in the store."""
    return hmac.new(salt.encode(), number.encode(), hashlib.sha256).hexdigest()
