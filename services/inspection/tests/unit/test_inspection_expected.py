"""The rules of the "who should be where" projection, without Redis or Kafka."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from inspection.domain.expected import (
    ExpectedBooking,
    Slot,
    after_booking_created,
    after_booking_ended,
    keep_until,
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
