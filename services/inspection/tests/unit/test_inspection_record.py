"""The hash-chained enforcement record: any change to a stored entry is found at that entry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from inspection.domain import record


def chain(n: int) -> tuple[list[dict[str, Any] | None], tuple[int, str]]:
    entries: list[dict[str, Any] | None] = []
    prev = record.GENESIS
    for i in range(1, n + 1):
        entry = record.seal(
            seq=i, prev=prev, at=f"2026-11-22T12:00:{i:02d}+00:00", kind="scan", ref=f"sc_{i}",
            data={"outcome": "compliant", "stall_id": "XZ-03-A017", "note": "摊位整洁"},
        )  # fmt: skip
        entries.append(entry)
        prev = entry["hash"]
    return entries, (n, prev)


def test_an_untouched_record_verifies() -> None:
    entries, head = chain(5)
    verdict = record.verify(entries, head)
    assert verdict.valid
    assert verdict.entries == 5
    assert verdict.head_hash == head[1]
    assert record.verify([], None).valid


@pytest.mark.parametrize("at", [1, 3, 5])
def test_altering_an_entry_breaks_the_chain_at_that_entry(at: int) -> None:
    entries, head = chain(5)
    changed = copy.deepcopy(entries)
    changed[at - 1]["data"]["outcome"] = "overtime"  # type: ignore[index]
    verdict = record.verify(changed, head)
    assert (verdict.valid, verdict.broken_at, verdict.reason) == (False, at, "altered")


@pytest.mark.parametrize("at", [1, 3, 4])
def test_deleting_an_entry_breaks_the_chain_at_its_place(at: int) -> None:
    entries, head = chain(5)
    del entries[at - 1]
    verdict = record.verify(entries, head)
    assert (verdict.valid, verdict.broken_at) == (False, at)


def test_deleting_the_last_entries_is_caught_by_the_head() -> None:
    entries, head = chain(5)
    verdict = record.verify(entries[:3], head)
    assert (verdict.valid, verdict.broken_at, verdict.reason) == (False, 4, "entries_missing")


def test_reordering_entries_breaks_the_chain_at_the_first_moved_one() -> None:
    entries, head = chain(5)
    entries[1], entries[3] = entries[3], entries[1]
    verdict = record.verify(entries, head)
    assert (verdict.valid, verdict.broken_at) == (False, 2)


def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_link_after_it() -> None:
    entries, head = chain(5)
    forged = dict(entries[1] or {})
    forged["data"] = {"outcome": "compliant", "stall_id": "XZ-03-A099", "note": ""}
    forged["hash"] = record.seal(
        **{k: forged[k] for k in ("seq", "prev", "at", "kind", "ref", "data")}
    )["hash"]
    entries[1] = forged
    verdict = record.verify(entries, head)
    assert (verdict.valid, verdict.broken_at, verdict.reason) == (False, 3, "chain_broken")


def test_an_unreadable_entry_is_named() -> None:
    entries, head = chain(3)
    entries[2] = None
    assert record.verify(entries, head).broken_at == 3
