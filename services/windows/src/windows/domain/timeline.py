"""A market's timeline: window instances and their four boundaries, with stable ids.

Plain Python. Durable timers (Redis) and publishing live in the adapters.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from stallkit.clock import MARKET_TZ
from windows.domain.schedule import MarketSchedule

BOUNDARY_NAMESPACE = uuid.UUID("6f1c2b7e-3a0d-5b8e-9c41-7d2e0f5a9b13")
"""Namespace of boundary ids: changing it changes every id, so it never changes."""


class BoundaryKind(enum.Enum):
    """What happens at a boundary of a window instance."""

    OPENED = "opened"
    CHECK_IN_DEADLINE_PASSED = "check_in_deadline_passed"
    CLOSING_SOON = "closing_soon"
    CLOSED = "closed"

    @property
    def rank(self) -> int:
        """Tie-break of equal due times (lower first): see :data:`RANKS`."""
        return RANKS[self.value]


#: The order of timers due at the same instant, whatever their market's windows: a window
#: closes before the next one opens, a suspension starts before a deadline passes, a check-in
#: deadline passes before "closing soon" of a short window, a suspension ends before a window
#: opens on the day it reopens.
RANKS: dict[str, int] = {
    "closed": 0,
    "suspended": 1,
    "check_in_deadline_passed": 2,
    "booking_check_in_deadline_passed": 2,
    "closing_soon": 3,
    "resumed": 4,
    "opened": 5,
}


@dataclass(frozen=True)
class Boundary:
    """One boundary of one window instance; ``due`` is an aware UTC datetime."""

    id: str
    market_id: str
    window_id: str
    date: date
    kind: BoundaryKind
    due: datetime
    starts_at: datetime
    ends_at: datetime

    @property
    def sort_key(self) -> tuple[datetime, int]:
        """Due time, then kind order."""
        return (self.due, self.kind.rank)

    @property
    def instance(self) -> str:
        """The window instance the boundary belongs to: ``<date>|<window id>``."""
        return instance_key(self.date, self.window_id)

    @property
    def opened_id(self) -> str:
        """The id of its instance's "opened" boundary (published once the instance started)."""
        return boundary_id(self.market_id, self.date, self.window_id, BoundaryKind.OPENED)


def instance_key(day: date, window_id: str) -> str:
    """A window instance within its market: ``<date>|<window id>``."""
    return f"{day.isoformat()}|{window_id}"


def boundary_id(market_id: str, day: date, window_id: str, kind: BoundaryKind) -> str:
    """The stable id of a boundary: a UUIDv5 of (market, local date, window, kind)."""
    name = f"{market_id}|{day.isoformat()}|{window_id}|{kind.value}"
    return str(uuid.uuid5(BOUNDARY_NAMESPACE, name))


def materialise(
    schedule: MarketSchedule,
    first: date,
    days: int = 8,
    check_in_after: timedelta = timedelta(minutes=30),
    closing_soon_before: timedelta = timedelta(minutes=15),
) -> list[Boundary]:
    """Every boundary of the schedule's instances on ``first`` .. ``first + days - 1``, in order."""
    found: list[Boundary] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        for occ in schedule.occurrences_on(day):
            start = occ.starts_at.astimezone(UTC)
            end = occ.ends_at.astimezone(UTC)
            dues = {
                BoundaryKind.OPENED: start,
                BoundaryKind.CHECK_IN_DEADLINE_PASSED: start + check_in_after,
                BoundaryKind.CLOSING_SOON: end - closing_soon_before,
                BoundaryKind.CLOSED: end,
            }
            found += [
                Boundary(
                    id=boundary_id(schedule.market_id, day, occ.window_id, kind),
                    market_id=schedule.market_id,
                    window_id=occ.window_id,
                    date=day,
                    kind=kind,
                    due=due,
                    starts_at=start,
                    ends_at=end,
                )
                for kind, due in dues.items()
            ]
    return sorted(found, key=lambda b: b.sort_key)


def local_today(now: datetime) -> date:
    """The market-local (Asia/Shanghai) date at ``now``."""
    return now.astimezone(MARKET_TZ).date()


class Timing(enum.Enum):
    """How a boundary stands against the clock when it is handled."""

    NOT_DUE = "not_due"
    ON_TIME = "on_time"
    LATE = "late"
    STALE = "stale"


@dataclass(frozen=True)
class Lateness:
    """A boundary's timing and how late it is (zero when on time or not due)."""

    timing: Timing
    late_by: timedelta

    @property
    def publishable(self) -> bool:
        """Whether the boundary is published now (stale ones are only recorded)."""
        return self.timing in (Timing.ON_TIME, Timing.LATE)


def classify(
    due: datetime,
    now: datetime,
    tolerance: timedelta = timedelta(seconds=5),
    stale_after: timedelta = timedelta(days=1),
) -> Lateness:
    """On time (within ``tolerance``), late (by how much), stale or not yet due."""
    late_by = now - due
    if late_by < timedelta(0):
        return Lateness(Timing.NOT_DUE, timedelta(0))
    if late_by > stale_after:
        return Lateness(Timing.STALE, late_by)
    if late_by > tolerance:
        return Lateness(Timing.LATE, late_by)
    return Lateness(Timing.ON_TIME, timedelta(0))
