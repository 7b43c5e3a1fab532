"""Which window of a market runs when: its weekly schedule, less what the windows service said.

Plain Python. The windows topic is folded into per-instance :class:`InstanceOverride` records
and per-suspension :class:`Suspension` records; :class:`MarketTimeline` combines them with the
schedule to answer "which window instance contains this moment" and "which one comes next".

Every fold is order-independent (fields only ever take the earliest or latest value, or are
set once), so a projection rebuilt from the topics, whose catalogue, booking and window events
interleave differently than they did live, ends up the same. What depends on more than one
topic (a cancellation undone by a later schedule or lift) is decided when asked, not stored.

Times are aware datetimes; windows are Asia/Shanghai wall-clock times and never cross midnight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from contracts.catalogue import MarketWindow
from stallkit.clock import MARKET_TZ

#: How many dates after today "the next window" may be on.
NEXT_WINDOW_DAYS = 7


class CancelCause(StrEnum):
    """Why the windows service cancelled a window instance (``window.cancelled`` ``cause``)."""

    SCHEDULE_CHANGED = "schedule_changed"
    SUSPENDED = "suspended"
    CLOSED = "closed"


@dataclass(frozen=True)
class WindowInstance:
    """One window of a market on one local date, as it runs: start and effective end (UTC)."""

    market_id: str
    date: date
    window_id: str
    starts_at: datetime
    ends_at: datetime

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` falls in ``[starts_at, ends_at)``."""
        return self.starts_at <= at < self.ends_at


def local_date(at: datetime) -> date:
    """The Asia/Shanghai date at ``at``."""
    return at.astimezone(MARKET_TZ).date()


def local_midnight(day: date) -> datetime:
    """Start of a local date, in UTC."""
    return datetime.combine(day, time(0), tzinfo=MARKET_TZ).astimezone(UTC)


def scheduled_times(window: MarketWindow, day: date) -> tuple[datetime, datetime]:
    """Start and end (UTC) of ``window`` on ``day`` as the schedule says."""
    start = datetime.combine(day, window.start, tzinfo=MARKET_TZ).astimezone(UTC)
    end = datetime.combine(day, window.end, tzinfo=MARKET_TZ).astimezone(UTC)
    return start, end


# --- what the windows topic said about one instance --------------------------------------------


@dataclass(frozen=True)
class InstanceOverride:
    """What ``window.opened`` / ``closed`` / ``cancelled`` said about one window instance.

    ``opened_at``/``closes_at``: it started (a started instance runs whatever the schedule or a
    suspension says later); ``closed_at``: when it closed (early, with ``closed_reason``, for an
    emergency closure); ``cancelled_at``: it was announced as not taking place.
    """

    opened_at: datetime | None = None
    closes_at: datetime | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None
    cancelled_at: datetime | None = None
    cancel_cause: str | None = None
    cancel_reason: str | None = None


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def after_window_opened(
    current: InstanceOverride | None, at: datetime, closes_at: datetime
) -> InstanceOverride:
    """The instance opened at ``at`` (its start) and is to close at ``closes_at``."""
    current = current or InstanceOverride()
    if current.opened_at is not None and current.opened_at <= at:
        return current  # the first opening stands (a duplicate changes nothing)
    return replace(current, opened_at=at, closes_at=closes_at)


def after_window_closed(
    current: InstanceOverride | None, at: datetime, reason: str | None
) -> InstanceOverride:
    """The instance closed at ``at``; a ``reason`` means an emergency closure."""
    current = current or InstanceOverride()
    if current.closed_at is not None and current.closed_at <= at:
        return current
    return replace(current, closed_at=at, closed_reason=reason)


def after_window_cancelled(
    current: InstanceOverride | None, at: datetime, cause: str, reason: str
) -> InstanceOverride:
    """The instance was announced as not taking place (the latest announcement counts)."""
    current = current or InstanceOverride()
    if current.cancelled_at is not None and current.cancelled_at >= at:
        return current
    return replace(current, cancelled_at=at, cancel_cause=cause, cancel_reason=reason)


# --- suspensions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suspension:
    """A date-range suspension of a market (or an emergency closure of the rest of a day).

    Heard from the catalogue (``suspension.declared``/``lifted``) and from the windows service
    (``market.suspended``/``resumed``) under one id; each field keeps the earliest word.
    ``in_force_from``: from when instances no longer start; ``lifted_at``/``reopened_from``:
    lifted then, its dates from ``reopened_from`` on run again. Without dates, only a lift was
    heard of.
    """

    suspension_id: str
    first_date: date | None = None
    last_date: date | None = None
    reason: str = ""
    in_force_from: datetime | None = None
    lifted_at: datetime | None = None
    reopened_from: date | None = None

    def dated(self, day: date) -> bool:
        """Whether ``day`` is among the dates it was declared for (lifts aside)."""
        if self.first_date is None or self.last_date is None:
            return True  # a lift of a suspension never heard of: it may have covered any date
        return self.first_date <= day <= self.last_date

    def suppresses(self, day: date, starts_at: datetime, ends_at: datetime) -> bool:
        """Whether the instance on ``day`` over ``[starts_at, ends_at)`` does not take place.

        An instance that started before the suspension came into force runs on (only an
        emergency closure ends it, with ``window.closed``). Once lifted, the reopened dates'
        instances that had not ended at the lift run again (the windows service schedules
        them anew); those over by then stay as they were.
        """
        if self.first_date is None or self.last_date is None or self.in_force_from is None:
            return False
        if not self.first_date <= day <= self.last_date or starts_at < self.in_force_from:
            return False
        if self.reopened_from is not None and day >= self.reopened_from:
            return self.lifted_at is not None and ends_at <= self.lifted_at
        return True


def in_force_from(first_date: date, declared_at: datetime) -> datetime:
    """When a suspension declared at ``declared_at`` stops windows from opening."""
    return max(local_midnight(first_date), declared_at)


def _min_date(a: date | None, b: date) -> date:
    return b if a is None or b < a else a


def after_suspension_declared(
    current: Suspension | None,
    suspension_id: str,
    first_date: date,
    last_date: date,
    reason: str,
    from_: datetime,
) -> Suspension:
    """A suspension was declared (catalogue) or came into force (windows) at ``from_``."""
    current = current or Suspension(suspension_id)
    reasons = [r for r in (current.reason, reason) if r]
    return replace(
        current,
        first_date=_min_date(current.first_date, first_date),
        last_date=last_date if current.last_date is None else max(current.last_date, last_date),
        reason=min(reasons) if reasons else "",
        in_force_from=_earliest(current.in_force_from, from_),
    )


def after_suspension_lifted(
    current: Suspension | None, suspension_id: str, lifted_at: datetime, reopened_from: date
) -> Suspension:
    """A suspension was lifted at ``lifted_at``: its dates from ``reopened_from`` on reopen."""
    current = current or Suspension(suspension_id)
    return replace(
        current,
        lifted_at=_earliest(current.lifted_at, lifted_at),
        reopened_from=_min_date(current.reopened_from, reopened_from),
    )


def lifted_by_resume_all(suspension: Suspension, resumed_at: Sequence[datetime]) -> Suspension:
    """Apply ``market.resumed`` without a suspension id (older producers): every suspension in
    force at that moment is lifted from that day on."""
    for at in resumed_at:
        if suspension.in_force_from is not None and suspension.in_force_from <= at:
            suspension = after_suspension_lifted(
                suspension, suspension.suspension_id, at, local_date(at)
            )
    return suspension


# --- the timeline of one market ----------------------------------------------------------------


@dataclass(frozen=True)
class MarketTimeline:
    """What is known about when a market's windows run, for some dates.

    ``overrides`` holds the instances of the dates asked for, keyed ``(date, window_id)``;
    ``resumed_all`` the times of ``market.resumed`` events without a suspension id.
    """

    market_id: str
    windows: Sequence[MarketWindow]
    schedule_as_of: datetime | None = None
    suspensions: Sequence[Suspension] = ()
    resumed_all: Sequence[datetime] = ()
    overrides: Mapping[tuple[date, str], InstanceOverride] = field(default_factory=dict)

    def _suspensions(self) -> list[Suspension]:
        return [lifted_by_resume_all(s, self.resumed_all) for s in self.suspensions]

    def _cancelled(
        self, ov: InstanceOverride, day: date, ends_at: datetime, suspensions: list[Suspension]
    ) -> bool:
        """Whether the instance's cancellation still holds.

        A newer schedule decides again about an instance cancelled for a schedule change; a
        lift of a suspension of its date that came before it ended reopens one cancelled for a
        suspension or closure (the windows service schedules it again).
        """
        if ov.cancelled_at is None:
            return False
        cancelled_at = ov.cancelled_at
        if ov.cancel_cause == CancelCause.SCHEDULE_CHANGED:
            return self.schedule_as_of is None or self.schedule_as_of <= cancelled_at
        if ov.cancel_cause in (CancelCause.SUSPENDED, CancelCause.CLOSED):
            return not any(
                s.lifted_at is not None and cancelled_at < s.lifted_at < ends_at and s.dated(day)
                for s in suspensions
            )
        return True

    def instances_on(self, day: date) -> list[WindowInstance]:
        """The window instances that take place on ``day``, earliest first, with their
        effective ends; cancelled and suspended ones are left out."""
        times: dict[str, tuple[datetime, datetime]] = {
            w.id: scheduled_times(w, day) for w in self.windows if day.isoweekday() in w.days
        }
        for (ov_day, window_id), ov in self.overrides.items():
            if ov_day == day and ov.opened_at is not None and ov.closes_at is not None:
                times[window_id] = (ov.opened_at, ov.closes_at)  # started: its own times hold
        suspensions = self._suspensions()
        found: list[WindowInstance] = []
        for window_id, (starts_at, ends_at) in times.items():
            ov = self.overrides.get((day, window_id), InstanceOverride())
            if ov.opened_at is None:
                if self._cancelled(ov, day, ends_at, suspensions):
                    continue
                if any(s.suppresses(day, starts_at, ends_at) for s in suspensions):
                    continue
            if ov.closed_at is not None and ov.closed_at < ends_at:
                ends_at = ov.closed_at
            if ends_at <= starts_at:
                continue
            found.append(WindowInstance(self.market_id, day, window_id, starts_at, ends_at))
        return sorted(found, key=lambda i: (i.starts_at, i.window_id))

    def window_at(self, at: datetime) -> WindowInstance | None:
        """The instance whose ``[start, effective end)`` contains ``at``, if one runs then."""
        return next((i for i in self.instances_on(local_date(at)) if i.contains(at)), None)

    def current_or_next(self, at: datetime, days: int = NEXT_WINDOW_DAYS) -> WindowInstance | None:
        """The instance running at ``at``, else the next to start today or in ``days`` dates."""
        running = self.window_at(at)
        if running is not None:
            return running
        today = local_date(at)
        for offset in range(days + 1):
            for instance in self.instances_on(today + timedelta(days=offset)):
                if instance.starts_at > at:
                    return instance
        return None


def dates_for_next(at: datetime, days: int = NEXT_WINDOW_DAYS) -> list[date]:
    """The local dates :meth:`MarketTimeline.current_or_next` may look at."""
    today = local_date(at)
    return [today + timedelta(days=n) for n in range(days + 1)]
