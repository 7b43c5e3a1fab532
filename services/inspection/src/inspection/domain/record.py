"""The enforcement record: every scan, warning and case step, hash-chained per district.

Each entry carries its sequence number, the hash of the entry before it and its own hash, the
SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8) without the ``hash`` field. Changing,
removing or reordering any entry breaks the chain at that entry, and the head (the last sequence
number and hash, kept apart) catches a removed tail.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes an entry's hash is taken over."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(
    *, seq: int, prev: str, at: str, kind: str, ref: str, data: dict[str, Any]
) -> dict[str, Any]:
    """A new entry, with its hash."""
    entry: dict[str, Any] = {
        "seq": seq,
        "prev": prev,
        "at": at,
        "kind": kind,
        "ref": ref,
        "data": data,
    }
    entry["hash"] = hashlib.sha256(canonical(entry)).hexdigest()
    return entry


@dataclass(frozen=True)
class Verdict:
    """Whether a district's record holds, and where it first breaks."""

    valid: bool
    entries: int
    broken_at: int | None = None
    reason: str | None = None
    head_hash: str | None = None


def verify(entries: list[dict[str, Any] | None], head: tuple[int, str] | None) -> Verdict:
    """Recompute the chain; the first broken position (1-based) and why, if any.

    ``None`` stands for an entry that is not readable JSON.
    """
    prev = GENESIS
    for position, entry in enumerate(entries, start=1):
        if entry is None or not isinstance(entry, dict):
            return Verdict(False, len(entries), position, "unreadable")
        if entry.get("seq") != position:
            return Verdict(False, len(entries), position, "out_of_sequence")
        if entry.get("prev") != prev:
            return Verdict(False, len(entries), position, "chain_broken")
        if hashlib.sha256(canonical(entry)).hexdigest() != entry.get("hash"):
            return Verdict(False, len(entries), position, "altered")
        prev = str(entry["hash"])
    head_seq, head_hash = head if head is not None else (0, GENESIS)
    if head_seq != len(entries) or head_hash != prev:
        return Verdict(False, len(entries), len(entries) + 1, "entries_missing", prev)
    return Verdict(True, len(entries), head_hash=prev)
