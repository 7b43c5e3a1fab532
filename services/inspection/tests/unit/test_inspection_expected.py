"""The rules of the "who should be where" projection, without Redis or Kafka: bookings, stall
code versions, free stalls, catalogue changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from inspection.domain.expected import (
    CodeStatus,
    ExpectedBooking,
    Slot,
    StallCodeVersions,
    StallFacts,
    after_booking_created,
    after_booking_ended,
    after_code_issued,
    after_code_revoked,
    booking_at,
    code_status,
    free_stalls,
    keep_until,
    supersedes,
)

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 23)
BOOKING = ExpectedBooking(
    booking_id="bk_1",
    vendor_id="vd_1",
    market_id="XZ-03",
    stall_id="XZ-03-A017",
    date=DAY,
    window_id="evening",
    category="cooked_food",
    starts_at=datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
    ends_at=datetime(2026, 11, 23, 14, 30, tzinfo=UTC),
)
REBOOKED = replace(BOOKING, booking_id="bk_2", vendor_id="vd_2")


def test_a_booking_puts_its_vendor_at_its_slot() -> None:
    assert BOOKING.slot == Slot("XZ-03-A017", DAY, "evening")
    assert after_booking_created(None, BOOKING, already_ended=False) == BOOKING


def test_a_replayed_creation_changes_nothing() -> None:
    assert after_booking_created(BOOKING, BOOKING, already_ended=False) is None


def test_an_ended_booking_is_never_revived() -> None:
    assert after_booking_created(None, BOOKING, already_ended=True) is None
    assert after_booking_created(REBOOKED, BOOKING, already_ended=True) is None


def test_a_newer_booking_of_a_released_stall_takes_the_slot() -> None:
    assert after_booking_created(BOOKING, REBOOKED, already_ended=False) == REBOOKED


def test_only_the_held_booking_clears_the_slot() -> None:
    assert after_booking_ended(BOOKING, "bk_1")
    assert not after_booking_ended(REBOOKED, "bk_1")
    assert not after_booking_ended(None, "bk_1")


def test_expected_bookings_are_kept_for_the_retention_after_their_date() -> None:
    until = keep_until(DAY, retention_days=7)
    # Local midnight starting 2026-12-01 is 16:00 UTC on 2026-11-30.
    assert until.astimezone(UTC) == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_the_booking_of_a_moment_is_the_one_whose_window_contains_it() -> None:
    late = replace(
        BOOKING,
        booking_id="bk_3",
        window_id="late",
        starts_at=datetime(2026, 11, 23, 14, 30, tzinfo=UTC),
        ends_at=datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
    )
    assert booking_at([late, BOOKING], datetime(2026, 11, 23, 10, tzinfo=UTC)) == BOOKING
    assert booking_at([late, BOOKING], datetime(2026, 11, 23, 14, 30, tzinfo=UTC)) == late
    assert booking_at([late, BOOKING], datetime(2026, 11, 23, 9, 29, tzinfo=UTC)) is None
    assert booking_at([], datetime(2026, 11, 23, 10, tzinfo=UTC)) is None


def test_a_stall_without_code_events_takes_any_verified_code() -> None:
    assert code_status(None, 1) is CodeStatus.CURRENT
    assert code_status(None, 7) is CodeStatus.CURRENT


def test_a_new_code_supersedes_the_older_ones() -> None:
    versions = after_code_issued(after_code_issued(None, 2), 3)
    assert code_status(versions, 3) is CodeStatus.CURRENT
    assert code_status(versions, 2) is CodeStatus.SUPERSEDED
    assert code_status(versions, 1) is CodeStatus.SUPERSEDED
    # Issued after the projection last heard: the signature proves it, so it holds.
    assert code_status(versions, 4) is CodeStatus.CURRENT


def test_a_revoked_code_is_revoked_and_stays_so() -> None:
    versions = after_code_revoked(after_code_issued(None, 2), 2)
    assert code_status(versions, 2) is CodeStatus.REVOKED
    assert code_status(versions, 1) is CodeStatus.SUPERSEDED
    versions = after_code_issued(versions, 3)
    assert code_status(versions, 2) is CodeStatus.REVOKED
    assert code_status(versions, 3) is CodeStatus.CURRENT
    # Superseded and revoked are both refused at a scan; the value tells which.
    assert {CodeStatus.SUPERSEDED.value, CodeStatus.REVOKED.value} == {"superseded", "revoked"}


def test_code_events_in_any_order_or_repeated_give_the_same_versions() -> None:
    one_way = after_code_revoked(after_code_issued(after_code_issued(None, 3), 3), 2)
    other_way = after_code_issued(after_code_revoked(after_code_revoked(None, 2), 2), 3)
    assert one_way == other_way == StallCodeVersions(latest=3, revoked=(2,))
    assert after_code_issued(one_way, 2) == one_way  # an older issue replayed late
    both = after_code_revoked(after_code_revoked(None, 3), 1)
    assert both == after_code_revoked(after_code_revoked(both, 1), 3)
    assert both.revoked == (1, 3)


def test_free_stalls_are_the_active_ones_of_the_category_nobody_booked() -> None:
    stalls = [
        StallFacts("XZ-03-A001", "XZ-03", "cooked_food", True),
        StallFacts("XZ-03-A002", "XZ-03", "cooked_food", True),
        StallFacts("XZ-03-A003", "XZ-03", "cooked_food", False),
        StallFacts("XZ-03-A004", "XZ-03", "daily_goods", True),
    ]
    assert free_stalls(stalls, [], None) == 3
    assert free_stalls(stalls, ["XZ-03-A001"], "cooked_food") == 1
    assert free_stalls(stalls, ["XZ-03-A001", "XZ-03-A003"], None) == 2
    assert free_stalls(stalls, ["XZ-03-A004"], "daily_goods") == 0
    assert free_stalls(stalls, [], "crafts_culture") == 0


def test_an_older_catalogue_change_never_replaces_a_newer_one() -> None:
    t = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert supersedes(t, None)
    assert supersedes(t, t)  # the same change again, or the next one of the same instant
    assert not supersedes(t, t.replace(minute=1))
