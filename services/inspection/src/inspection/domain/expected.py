"""Who should be where: the booked vendor of each stall, date and window; the catalogue facts
patrols need (markets, stalls, stall-code versions).

Plain Python: events are translated into these types at the edge. The rules decide what the
projection holds after each event, so that replays and stray events cannot corrupt it. When a
window runs is in :mod:`inspection.domain.market_time`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from contracts.catalogue import MarketWindow
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
class GeoPoint:
    """WGS-84 coordinates of a market."""

    lat: float
    lon: float


@dataclass(frozen=True)
class MarketFacts:
    """What the catalogue says about a market that matters to patrols.

    ``as_of`` is the time of the catalogue change that set the facts; ``windows`` (the weekly
    schedule) and ``schedule_as_of`` are kept apart, since a schedule can change on its own.
    """

    market_id: str
    district: str
    name_zh: str = ""
    name_en: str = ""
    location: GeoPoint | None = None
    zones: tuple[str, ...] = ()
    windows: tuple[MarketWindow, ...] = ()
    as_of: datetime | None = None
    schedule_as_of: datetime | None = None


@dataclass(frozen=True)
class MarketSchedule:
    """A market's weekly schedule as of the catalogue change that set it."""

    windows: tuple[MarketWindow, ...]
    as_of: datetime


def supersedes(incoming: datetime, known: datetime | None) -> bool:
    """Whether a catalogue change at ``incoming`` replaces what was set at ``known``.

    One market's catalogue events arrive in order, but a replayed or re-published old change
    must not roll facts back: the newest change (by event time) wins, ties to the later one.
    """
    return known is None or incoming >= known


class CodeStatus(StrEnum):
    """Where a verified stall code stands among its stall's issued versions.

    A superseded and a revoked code are both refused at a scan; the difference tells the patrol
    whether the stall simply has a newer code or this one was withdrawn.
    """

    CURRENT = "current"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"


@dataclass(frozen=True)
class StallCodeVersions:
    """The code versions of one stall seen in ``stall_code.issued``/``revoked`` events."""

    latest: int | None = None
    revoked: tuple[int, ...] = ()  # ascending, so that equal histories store equally


def after_code_issued(current: StallCodeVersions | None, version: int) -> StallCodeVersions:
    """Version ``version`` was issued (the newest issue wins, in whatever order they come)."""
    current = current or StallCodeVersions()
    if current.latest is not None and current.latest >= version:
        return current
    return replace(current, latest=version)


def after_code_revoked(current: StallCodeVersions | None, version: int) -> StallCodeVersions:
    """Version ``version`` was revoked."""
    current = current or StallCodeVersions()
    return replace(current, revoked=tuple(sorted({*current.revoked, version})))


def code_status(versions: StallCodeVersions | None, version: int) -> CodeStatus:
    """How a code whose signature holds stands.

    Revoked if that version was revoked; superseded if a newer one was issued; otherwise
    current, also for a version newer than any seen (the signature proves allocation issued
    it, and this projection may lag) and for a stall with no code events at all.
    """
    if versions is None:
        return CodeStatus.CURRENT
    if version in versions.revoked:
        return CodeStatus.REVOKED
    if versions.latest is not None and version < versions.latest:
        return CodeStatus.SUPERSEDED
    return CodeStatus.CURRENT


def free_stalls(stalls: Iterable[StallFacts], booked: Iterable[str], category: str | None) -> int:
    """How many active stalls (of ``category``, or any) are not among ``booked`` stall ids."""
    taken = set(booked)
    return sum(
        1
        for s in stalls
        if s.active and (category is None or s.category == category) and s.stall_id not in taken
    )


def booking_at(bookings: Iterable[ExpectedBooking], at: datetime) -> ExpectedBooking | None:
    """The booking whose window ``[starts_at, ends_at)`` contains ``at``, earliest first."""
    found = sorted(
        (b for b in bookings if b.starts_at <= at < b.ends_at), key=lambda b: b.starts_at
    )
    return found[0] if found else None
