"""Free text that people read (names, reasons, addresses): printable, visible, one direction.

``PlainText`` refuses what makes text lie about itself on a screen or in a terminal:

- control characters (Unicode category ``Cc``: NUL, BEL, ESC and the terminal escapes it starts,
  tab and newline included: these fields are single-line labels),
- unpaired surrogates (category ``Cs``: not encodable as UTF-8),
- bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder the text
  around them ("Trojan Source"),
- text that is empty once invisible characters (format characters ``Cf``, separators ``Z*`` and
  the blank letters below) are taken away: a name of zero-width spaces looks like no name.

Every service validates its free-text inputs with it; the checks run after any length limit the
field sets, so an oversized value is refused before it is scanned.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

#: Bidirectional embeddings, overrides and isolates.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Letters and symbols that render as nothing (Hangul fillers, braille blank).
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _invisible(char: str) -> bool:
    category = unicodedata.category(char)
    return category == "Cf" or category.startswith("Z") or char in BLANK_LETTERS


def plain_text_problem(text: str) -> str | None:
    """Why ``text`` is not plain text, or ``None`` when it is."""
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            return f"control character U+{ord(char):04X} is not allowed"
        if category == "Cs":
            return f"unpaired surrogate U+{ord(char):04X} is not allowed"
        if char in BIDI_CONTROLS:
            return f"bidirectional control U+{ord(char):04X} is not allowed"
    if all(_invisible(char) for char in text):
        return "text must contain visible characters"
    return None


def _plain(text: str) -> str:
    problem = plain_text_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def _plain_or_empty(text: str) -> str:
    return text if text == "" else _plain(text)


#: Visible, single-line text without control or bidirectional characters.
PlainText = Annotated[str, AfterValidator(_plain)]
#: :data:`PlainText`, or exactly the empty string (an optional field left blank).
PlainTextOrEmpty = Annotated[str, AfterValidator(_plain_or_empty)]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date_only(value: object) -> object:
    """Refuse any date spelling but ``YYYY-MM-DD`` (lax parsing took ``0`` as 1970-01-01)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value
    raise ValueError("a date is written YYYY-MM-DD")


#: A calendar date given as ``YYYY-MM-DD`` and nothing else (no numbers, no times).
IsoDate = Annotated[
    dt.date,
    BeforeValidator(_iso_date_only),
    Field(description="Local date, YYYY-MM-DD.", examples=["2026-12-08"]),
]
