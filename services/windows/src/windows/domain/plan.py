"""What a market's timers should be: its window boundaries, less what suspensions shut, plus the
suspensions' own announcements. Plain Python; the timer store applies a plan atomically.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from contracts.catalogue import District
from contracts.envelope import Event
from contracts.events import (
    CheckInDeadlinePassed,
    MarketResumed,
    MarketSuspended,
    WindowClosed,
    WindowClosingSoon,
    WindowEvent,
    WindowOpened,
)
from stallkit.clock import MARKET_TZ
from windows.domain.schedule import MarketSchedule
from windows.domain.timeline import (
    BOUNDARY_NAMESPACE,
    Boundary,
    BoundaryKind,
    local_today,
    materialise,
)

#: Why an instance is withdrawn when neither a suspension nor a closure covers its date.
SCHEDULE_CHANGED = ("schedule_changed", "窗口已从时间表中移除或改期 Window removed or moved")


@dataclass(frozen=True)
class Timer:
    """One durable timer: at ``due`` the market announces ``event``.

    ``kind`` orders timers due at the same instant (see ``timeline.RANKS``). Timers of window
    instances carry the instance (``<date>|<window>``) and the id of its "opened" boundary: once
    that is published the instance has started and a plan no longer changes it. ``planned``
    timers belong to the planner, which withdraws those a new plan no longer has; the others
    (a late booking's own deadline) stay until due.
    """

    id: str
    market_id: str
    kind: str
    due: datetime
    event: Event
    day: date | None = None
    instance: str | None = None
    opened_id: str | None = None
    planned: bool = True


def boundary_event(
    boundary: Boundary, district: District, reason: str | None = None
) -> WindowEvent:
    """The contract event a boundary announces (``reason``: a window closed early)."""
    common = {
        "market_id": boundary.market_id,
        "date": boundary.date,
        "window_id": boundary.window_id,
        "district": district,
    }
    match boundary.kind:
        case BoundaryKind.OPENED:
            return WindowOpened.model_validate({**common, "closes_at": boundary.ends_at})
        case BoundaryKind.CHECK_IN_DEADLINE_PASSED:
            return CheckInDeadlinePassed.model_validate({**common, "deadline": boundary.due})
        case BoundaryKind.CLOSING_SOON:
            return WindowClosingSoon.model_validate({**common, "closes_at": boundary.ends_at})
        case BoundaryKind.CLOSED:
            return WindowClosed.model_validate({**common, "reason": reason})


def boundary_timer(boundary: Boundary, district: District, reason: str | None = None) -> Timer:
    """The timer of one window boundary."""
    return Timer(
        id=boundary.id,
        market_id=boundary.market_id,
        kind=boundary.kind.value,
        due=boundary.due,
        event=boundary_event(boundary, district, reason),
        day=boundary.date,
        instance=boundary.instance,
        opened_id=boundary.opened_id,
    )


@dataclass(frozen=True)
class Suspension:
    """A date-range suspension of a market, or an emergency closure (the rest of one day).

    ``lifted_at``/``reopened_from``: lifted early; dates from ``reopened_from`` on reopen.
    """

    id: str
    first_date: date
    last_date: date
    reason: str
    declared_at: datetime
    closure: bool = False
    lifted_at: datetime | None = None
    reopened_from: date | None = None

    @property
    def end(self) -> date:
        """The first date no longer suspended (exclusive end of the effective range)."""
        end = self.last_date + timedelta(days=1)
        if self.reopened_from is not None:
            end = min(end, max(self.reopened_from, self.first_date))
        return end

    def covers(self, day: date) -> bool:
        """Whether ``day`` is suspended by this suspension (after any lifting)."""
        return self.first_date <= day < self.end

    @property
    def takes_effect(self) -> bool:
        """Whether any date stays suspended (not lifted before it began)."""
        return self.end > self.first_date

    def timer_id(self, market_id: str, what: str) -> str:
        """Stable id of its ``suspended``/``resumed`` announcement."""
        return str(uuid.uuid5(BOUNDARY_NAMESPACE, f"{market_id}|{self.id}|{what}"))


def local_midnight(day: date) -> datetime:
    """Start of a local date, in UTC."""
    return datetime.combine(day, time(0), tzinfo=MARKET_TZ).astimezone(UTC)


def suspension_timers(market_id: str, district: District, s: Suspension) -> list[Timer]:
    """``market.suspended`` when it takes effect and ``market.resumed`` when it ends or lifts."""
    if not s.takes_effect:
        return []
    starts = max(local_midnight(s.first_date), s.declared_at)
    ends = local_midnight(s.end)
    if s.lifted_at is not None:
        ends = max(ends, s.lifted_at)
    suspended = MarketSuspended(
        market_id=market_id,
        district=district,
        first_date=s.first_date,
        last_date=s.last_date,
        reason=s.reason,
        suspension_id=s.id,
    )
    resumed = MarketResumed(market_id=market_id, district=district, suspension_id=s.id)
    return [
        Timer(s.timer_id(market_id, "suspended"), market_id, "suspended", starts, suspended),
        Timer(s.timer_id(market_id, "resumed"), market_id, "resumed", max(ends, starts), resumed),
    ]


@dataclass(frozen=True)
class Plan:
    """A market's wanted timers, applied by ``TimerStore.replan`` in one atomic step.

    - ``items``: scheduled unless already published or their instance has started;
    - ``valid``: planned timers that may stay pending; other pending planned timers dated
      ``from_date`` or later (or undated) are withdrawn, unless their instance has started,
      and each withdrawn instance is announced with ``window.cancelled`` (cause by date);
    - ``force``/``remove``: an emergency closure's changes to a started instance;
    - ``stamp_ms``: the time of the newest input; an older plan than the last applied is
      refused, so that a slow replica cannot roll a market back.
    """

    market_id: str
    district: District
    stamp_ms: int
    from_date: date
    items: tuple[Timer, ...]
    valid: frozenset[str]
    causes: dict[date, tuple[str, str]] = field(default_factory=dict)
    force: tuple[Timer, ...] = ()
    remove: tuple[str, ...] = ()

    def cause(self, day: date) -> tuple[str, str]:
        """Why an instance on ``day`` is withdrawn: (cause, reason)."""
        return self.causes.get(day, SCHEDULE_CHANGED)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def plan_market(
    schedule: MarketSchedule,
    district: District,
    suspensions: list[Suspension],
    now: datetime,
    *,
    days: int = 8,
    check_in_after: timedelta = timedelta(minutes=30),
    closing_soon_before: timedelta = timedelta(minutes=15),
) -> Plan:
    """The timers the market should have at ``now``: today and the next ``days - 1`` dates.

    Instances that already ended are not scheduled (a first plan does not announce the past),
    but their pending timers stay valid, so that a service back from an outage catches them up.
    """
    today = local_today(now)
    items: list[Timer] = []
    valid: set[str] = set()
    causes: dict[date, tuple[str, str]] = {}
    for boundary in materialise(
        schedule,
        today,
        days,
        check_in_after=check_in_after,
        closing_soon_before=closing_soon_before,
    ):
        shut = next((s for s in suspensions if s.covers(boundary.date)), None)
        if shut is not None:
            causes[boundary.date] = ("closed" if shut.closure else "suspended", shut.reason)
            continue
        valid.add(boundary.id)
        if boundary.ends_at > now:
            items.append(boundary_timer(boundary, district))
    for s in suspensions:
        for timer in suspension_timers(schedule.market_id, district, s):
            valid.add(timer.id)
            items.append(timer)
    inputs = [schedule.as_of, *(s.declared_at for s in suspensions)]
    inputs += [s.lifted_at for s in suspensions if s.lifted_at is not None]
    return Plan(
        market_id=schedule.market_id,
        district=district,
        stamp_ms=_ms(max(inputs)),
        from_date=today,
        items=tuple(items),
        valid=frozenset(valid),
        causes=causes,
    )
