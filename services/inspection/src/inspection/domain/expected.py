"""Who should be where: the booked vendor of each stall, date and window.

Plain Python: booking events are translated into these types at the edge. The rules decide what
a slot holds after each lifecycle step, so that replays and stray events cannot corrupt it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from stallkit.clock import local_datetime


@dataclass(frozen=True)
class Slot:
    """One stall in one window occurrence."""

    stall_id: str
    date: date
    window_id: str


@dataclass(frozen=True)
class ExpectedBooking:
    """The booking that should be found at a slot: which vendor, when."""

    booking_id: str
    vendor_id: str
    market_id: str
    stall_id: str
    date: date
    window_id: str
    category: str
    starts_at: datetime
    ends_at: datetime

    @property
    def slot(self) -> Slot:
        """Where this booking puts its vendor."""
        return Slot(self.stall_id, self.date, self.window_id)


class BookingEnd(StrEnum):
    """Why a booking no longer puts its vendor at the stall."""

    CANCELLED = "cancelled"
    SUSPENDED = "suspended"
    NO_SHOW = "no_show"


def after_booking_created(
    current: ExpectedBooking | None, booking: ExpectedBooking, *, already_ended: bool
) -> ExpectedBooking | None:
    """What the slot should hold once ``booking`` is created; None leaves it as it is.

    A booking that already ended (its end was seen first, or it is being replayed) is never
    brought back. Otherwise the newest booking of the slot wins: the stall may have been
    released (no-show) and booked again for the same window.
    """
    if already_ended or current == booking:
        return None
    return booking


def after_booking_ended(current: ExpectedBooking | None, booking_id: str) -> bool:
    """Whether the slot must be cleared when booking ``booking_id`` ends.

    Only the booking the slot holds clears it; the end of an older booking of the same slot
    must not remove its successor.
    """
    return current is not None and current.booking_id == booking_id


def keep_until(day: date, retention_days: int) -> datetime:
    """Until when the expected bookings of ``day`` are kept (local midnight after retention)."""
    return local_datetime(day + timedelta(days=1 + retention_days), 0)


@dataclass(frozen=True)
class StallFacts:
    """What the catalogue says about a stall."""

    stall_id: str
    market_id: str
    category: str
    active: bool


@dataclass(frozen=True)
class MarketFacts:
    """What the catalogue says about a market that matters to patrols."""

    market_id: str
    district: str
