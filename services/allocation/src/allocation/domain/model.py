"""Vendors and bookings as plain Python: states, the transition table, priority groups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from allocation.domain.errors import IllegalTransition
from contracts.catalogue import Category
from contracts.events import PriorityGroup

__all__ = [
    "ACTIVE_STATES",
    "TRANSITIONS",
    "Booking",
    "BookingAction",
    "BookingState",
    "PriorityGroup",
    "Vendor",
    "next_state",
]


class BookingState(StrEnum):
    """Where a booking is in its lifecycle."""

    BOOKED = "booked"
    CHECKED_IN = "checked_in"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    SUSPENDED = "suspended_by_market"


class BookingAction(StrEnum):
    """What can happen to a booking."""

    CANCEL = "cancel"
    CHECK_IN = "check_in"
    MARK_NO_SHOW = "mark_no_show"
    SUSPEND = "suspend"


#: The one transition table: (state, action) -> next state. Anything else is illegal.
TRANSITIONS: dict[tuple[BookingState, BookingAction], BookingState] = {
    (BookingState.BOOKED, BookingAction.CANCEL): BookingState.CANCELLED,
    (BookingState.BOOKED, BookingAction.CHECK_IN): BookingState.CHECKED_IN,
    (BookingState.BOOKED, BookingAction.MARK_NO_SHOW): BookingState.NO_SHOW,
    (BookingState.BOOKED, BookingAction.SUSPEND): BookingState.SUSPENDED,
    (BookingState.CHECKED_IN, BookingAction.SUSPEND): BookingState.SUSPENDED,
}

#: States that hold the stall (and count toward overlap and the weekly cap).
ACTIVE_STATES = frozenset({BookingState.BOOKED, BookingState.CHECKED_IN})


def next_state(state: BookingState, action: BookingAction) -> BookingState:
    """The state after ``action``, or an ``illegal_transition`` error."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise IllegalTransition(f"cannot {action.value} a booking that is {state.value}") from None


@dataclass(frozen=True)
class Vendor:
    """A registered vendor (personal data stays in allocation's store).

    ``priority_group``, ``categories`` and ``health_certificate_expires`` are what counts: the
    verified claims (:mod:`allocation.domain.eligibility`), as valid on the date it was read for.
    """

    id: str
    name: str
    phone: str
    priority_group: PriorityGroup
    categories: frozenset[Category]
    health_certificate_expires: date | None
    suspended_until: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Booking:
    """One booking of a stall for a market window on a date."""

    id: str
    vendor_id: str
    market_id: str
    stall_id: str
    date: date
    window_id: str
    category: Category
    priority: bool
    state: BookingState
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    checked_in_at: datetime | None = None
    cancelled_at: datetime | None = None
    late_cancellation: bool = False
    reason: str | None = None
