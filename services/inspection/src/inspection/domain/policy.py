"""What a scan found, and what follows from it ("1+1"): plain rules, no I/O.

A scan is judged at its observation time: the code, the window running then, the booking that
should be at the stall then, and who the patrol found there.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from contracts.events import ScanOutcome
from inspection.domain.violations import (
    OVERTIME_VENDING,
    STALL_TRANSFER,
    UNBOOKED_STALL_USE,
    Violation,
)

#: The shape of a stall code, signed or not: a text of this shape that does not verify is forged.
_CODE_SHAPE = re.compile(r"^ZHSC1\.[^.\s]+\.[^.\s]+\.[^.\s]+$")
_IDENTITY = re.compile(r"^[0-9]{17}[0-9X]$|^[A-Z0-9]{6,20}$")


class CodeCheck(StrEnum):
    """What checking the code text with the public key and the projection said."""

    VALID = "valid"
    UNREADABLE = "unreadable"
    FORGED = "forged"
    OTHER_STALL = "other_stall"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"


def code_shape_is_stall_code(text: str) -> bool:
    """Whether ``text`` looks like a stall code (so a failed signature means forged)."""
    return bool(_CODE_SHAPE.match(text.strip()))


@dataclass(frozen=True)
class Observation:
    """What the patrol saw at the stall."""

    occupied: bool
    vendor_id: str | None = None
    subject_id: str | None = None


@dataclass(frozen=True)
class Finding:
    """A scan's outcome, and the violation it amounts to for whoever is at the stall."""

    outcome: ScanOutcome
    violation: str | None = None


def judge(
    code: CodeCheck,
    *,
    window_open: bool,
    expected_vendor: str | None,
    seen: Observation,
) -> Finding:
    """The one outcome of a scan, from the code, the time and what the patrol saw."""
    if code is CodeCheck.UNREADABLE or code is CodeCheck.OTHER_STALL:
        return Finding(ScanOutcome.INVALID_CODE)
    if code is CodeCheck.FORGED:
        return Finding(ScanOutcome.FORGED_CODE)
    if code in (CodeCheck.REVOKED, CodeCheck.SUPERSEDED):
        return Finding(ScanOutcome.REVOKED_CODE)
    if not window_open:
        if seen.occupied:
            return Finding(ScanOutcome.OVERTIME, OVERTIME_VENDING)
        return Finding(ScanOutcome.COMPLIANT)
    if expected_vendor is None:
        if seen.occupied:
            return Finding(ScanOutcome.OCCUPIED_WITHOUT_BOOKING, UNBOOKED_STALL_USE)
        return Finding(ScanOutcome.COMPLIANT)
    if not seen.occupied:
        return Finding(ScanOutcome.BOOKED_BUT_VACANT)
    if seen.vendor_id == expected_vendor:
        return Finding(ScanOutcome.COMPLIANT)
    return Finding(ScanOutcome.WRONG_VENDOR, STALL_TRANSFER)


class Disposal(StrEnum):
    """How one violation is handled under "1+1"."""

    WARNING = "warning"
    CASE = "case"


def dispose(violations: list[Violation], earlier: int) -> list[tuple[Violation, Disposal]]:
    """ "1+1": a warnable violation by a subject with no violation in the look-back is a warning.

    ``earlier`` counts the subject's violations in the look-back before this one; a repeat, or a
    violation off the exemption list, opens a case. Violations seen together at one scan are
    one occasion: a clean subject gets warnings for every warnable one of them.
    """
    return [
        (v, Disposal.WARNING if v.warnable and earlier == 0 else Disposal.CASE) for v in violations
    ]


def normalise_identity(number: str) -> str:
    """An identity number as it is hashed: no spaces, upper case; ValueError if not one."""
    cleaned = re.sub(r"\s+", "", number).upper()
    if not _IDENTITY.match(cleaned):
        raise ValueError("not an identity or passport number")
    return cleaned


def identity_subject(number: str, salt: str) -> str:
    """The subject id standing for an identity number: a keyed hash, never the number."""
    digest = hmac.new(salt.encode(), normalise_identity(number).encode(), hashlib.sha256)
    return "id_" + digest.hexdigest()[:32]
