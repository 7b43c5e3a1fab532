"""The windows service's use cases: keep each market's timers as its schedule and suspensions
say, announce late bookings' own deadlines, close a market at once, and read the timeline.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from contracts.catalogue import District
from contracts.events import BookingCheckInDeadlinePassed, BookingCreated
from stallkit.clock import Clock
from stallkit.problems import ProblemError
from windows.adapters.schedule_store import ScheduleStore
from windows.adapters.suspensions import SuspensionStore
from windows.adapters.timers import Claimed, Replanned, TimerStore
from windows.config import WindowsSettings
from windows.domain.plan import Plan, Suspension, Timer, plan_market
from windows.domain.schedule import MarketSchedule
from windows.domain.timeline import (
    BOUNDARY_NAMESPACE,
    BoundaryKind,
    boundary_id,
    instance_key,
    local_today,
    materialise,
)

log = logging.getLogger(__name__)


class MarketUnknown(Exception):
    """No schedule is known for the market (yet)."""


@dataclass(frozen=True)
class BoundaryState:
    """One boundary of an instance: when it is due and when it was published, if it was."""

    kind: BoundaryKind
    due: datetime
    published_at: datetime | None


@dataclass(frozen=True)
class InstanceState:
    """One window instance of a market as the timeline stands."""

    market_id: str
    district: District
    window_id: str
    date: date
    starts_at: datetime
    ends_at: datetime
    state: str
    boundaries: list[BoundaryState]
    reason: str | None = None


@dataclass(frozen=True)
class ClosureResult:
    """An emergency closure: the window it closed at once and the later ones it shut."""

    closure: Suspension
    market_id: str
    district: District
    closed_window: str | None
    shut_windows: list[str] = field(default_factory=list)
    existing: bool = False


class Timeline:
    """Plans markets' timers and answers what the timeline holds."""

    def __init__(
        self,
        settings: WindowsSettings,
        clock: Clock,
        schedules: ScheduleStore,
        timers: TimerStore,
        suspensions: SuspensionStore,
    ):
        self.settings = settings
        self.clock = clock
        self.schedules = schedules
        self.timers = timers
        self.suspensions = suspensions
        self.check_in_after = timedelta(minutes=settings.check_in_after_minutes)
        self.closing_soon = timedelta(minutes=settings.closing_soon_minutes)

    async def _schedule(self, market_id: str) -> tuple[MarketSchedule, District]:
        schedule = await self.schedules.get(market_id)
        if schedule is None or schedule.district is None:
            raise MarketUnknown(market_id)
        return schedule, District(schedule.district)

    async def plan(self, market_id: str, now: datetime | None = None) -> Plan:
        """The market's plan from its schedule and suspensions at ``now``."""
        schedule, district = await self._schedule(market_id)
        return plan_market(
            schedule,
            district,
            await self.suspensions.all(market_id),
            now or self.clock.now(),
            days=self.settings.timeline_days,
            check_in_after=self.check_in_after,
            closing_soon_before=self.closing_soon,
        )

    async def replan(self, market_id: str) -> Replanned | None:
        """Bring the market's timers in line with its inputs; None for an unknown market."""
        now = self.clock.now()
        try:
            plan = await self.plan(market_id, now)
        except MarketUnknown:
            return None
        result = await self.timers.replan(plan, now)
        if result.withdrawn:
            log.info(
                "window instances withdrawn",
                extra={"market_id": market_id, "instances": list(result.withdrawn)},
            )
        return result

    async def replan_all(self) -> int:
        """Replan every known market (start-up and each new local day); returns how many."""
        markets = await self.schedules.market_ids()
        for market_id in markets:
            await self.replan(market_id)
        return len(markets)

    # -- suspensions ---------------------------------------------------------------------

    async def suspension_declared(self, market_id: str, s: Suspension) -> None:
        """A suspension was declared (by allocation): record it once, replan."""
        await self.suspensions.add(market_id, s)
        await self.replan(market_id)

    async def suspension_lifted(
        self, market_id: str, suspension_id: str, lifted_at: datetime, reopened_from: date
    ) -> bool:
        """A suspension was lifted early: its later dates reopen. False when it is unknown."""
        lifted = await self.suspensions.lift(market_id, suspension_id, lifted_at, reopened_from)
        if lifted is None:
            return False
        await self.replan(market_id)
        return True

    # -- late bookings -------------------------------------------------------------------

    def booking_deadline(self, event: BookingCreated, booked_at: datetime) -> datetime:
        """The booking's own check-in deadline (the event's, else the scheme's rule)."""
        if event.check_in_closes_at is not None:
            return event.check_in_closes_at
        deadline = event.starts_at + self.check_in_after
        if booked_at > event.starts_at:
            deadline = min(event.ends_at, max(deadline, booked_at + self.check_in_after))
        return deadline

    async def booking_created(self, event: BookingCreated, booked_at: datetime) -> bool:
        """A booking whose deadline is later than its window's gets its own timer."""
        deadline = self.booking_deadline(event, booked_at)
        if deadline <= event.starts_at + self.check_in_after:
            return False  # the window's deadline covers it
        _, district = await self._schedule(event.market_id)
        timer = Timer(
            id=str(
                uuid.uuid5(
                    BOUNDARY_NAMESPACE, f"{event.market_id}|{event.booking_id}|check_in_deadline"
                )
            ),
            market_id=event.market_id,
            kind="booking_check_in_deadline_passed",
            due=deadline,
            event=BookingCheckInDeadlinePassed(
                market_id=event.market_id,
                date=event.date,
                window_id=event.window_id,
                district=district,
                booking_id=event.booking_id,
                deadline=deadline,
            ),
            day=event.date,
            instance=instance_key(event.date, event.window_id),
            planned=False,
        )
        await self.timers.schedule([timer])
        return True

    # -- emergency closures --------------------------------------------------------------

    async def district_of(self, market_id: str) -> District:
        """The market's district, or a 404 problem."""
        try:
            return (await self._schedule(market_id))[1]
        except MarketUnknown:
            raise ProblemError("market_not_found", 404) from None

    async def close_now(self, market_id: str, reason: str) -> ClosureResult:
        """Close the market for the rest of today: the open window at once, later ones shut.

        A second closure while one is in force answers with that one.
        """
        district = await self.district_of(market_id)
        now = self.clock.now()
        today = local_today(now)
        for s in await self.suspensions.all(market_id):
            if s.closure and s.first_date == today and s.covers(today):
                return ClosureResult(s, market_id, district, None, existing=True)
        closure = Suspension(
            id=f"cl_{uuid.uuid4().hex[:16]}",
            first_date=today,
            last_date=today,
            reason=reason,
            declared_at=now,
            closure=True,
        )
        await self.suspensions.add(market_id, closure)
        pending = [t for t in await self.timers.pending(market_id) if t.day == today]
        started = await self.timers.published_at(
            market_id, sorted({t.opened_id for t in pending if t.opened_id})
        )
        open_closed = [t for t in pending if t.kind == "closed" and t.opened_id in started]
        force: list[Timer] = []
        remove: list[str] = []
        for closed in open_closed:
            event = closed.event.model_copy(update={"reason": reason})
            force.append(replace(closed, due=now, event=event))
            remove += [t.id for t in pending if t.instance == closed.instance and t is not closed]
        plan = replace(await self.plan(market_id, now), force=tuple(force), remove=tuple(remove))
        result = await self.timers.replan(plan, now)
        await self.timers.claim_due(market_id, now)
        closed_window = open_closed[0].instance if open_closed else None
        return ClosureResult(
            closure,
            market_id,
            district,
            None if closed_window is None else closed_window.split("|", 1)[1],
            sorted(i.split("|", 1)[1] for i in result.withdrawn),
        )

    async def reopen(self, market_id: str, closure_id: str) -> tuple[Suspension, Claimed]:
        """Lift a closure: today's later windows that have not ended open again."""
        await self.district_of(market_id)
        closure = await self.suspensions.get(market_id, closure_id)
        if closure is None or not closure.closure:
            raise ProblemError("closure_not_found", 404)
        now = self.clock.now()
        lifted = await self.suspensions.lift(market_id, closure_id, now, local_today(now))
        assert lifted is not None
        await self.replan(market_id)
        return lifted, await self.timers.claim_due(market_id, now)

    # -- reading -------------------------------------------------------------------------

    async def instances(self, market_id: str, day: date) -> list[InstanceState]:
        """The market's window instances on ``day``, with their state and boundaries."""
        schedule, district = await self._schedule(market_id)
        boundaries = materialise(
            schedule,
            day,
            1,
            check_in_after=self.check_in_after,
            closing_soon_before=self.closing_soon,
        )
        pending = {t.id: t for t in await self.timers.pending(market_id) if t.day == day}
        instances: dict[str, list[tuple[str, BoundaryKind, datetime]]] = {}
        for b in boundaries:
            due = pending[b.id].due if b.id in pending else b.due
            instances.setdefault(b.window_id, []).append((b.id, b.kind, due))
        ids = [i for rows in instances.values() for i, _, _ in rows]
        cancel_ids = [
            f"{boundary_id(market_id, day, w, BoundaryKind.OPENED)}:cancelled" for w in instances
        ]
        published = await self.timers.published_at(market_id, ids + cancel_ids)
        suspended = next((s for s in await self.suspensions.all(market_id) if s.covers(day)), None)
        found: list[InstanceState] = []
        for window_id, rows in instances.items():
            states = [BoundaryState(kind, due, published.get(i)) for i, kind, due in rows]
            by_kind = {s.kind: s for s in states}
            opened = by_kind[BoundaryKind.OPENED]
            closed = by_kind[BoundaryKind.CLOSED]
            reason = None
            if closed.published_at is not None:
                state = "closed"
            elif opened.published_at is not None:
                state = "open"
            elif any(i in pending for i, _, _ in rows):
                state = "scheduled"
            elif suspended is not None:
                state, reason = "suspended", suspended.reason
            elif f"{boundary_id(market_id, day, window_id, BoundaryKind.OPENED)}:cancelled" in (
                published
            ):
                state = "cancelled"
            else:
                state = "scheduled"
            found.append(
                InstanceState(
                    market_id=market_id,
                    district=district,
                    window_id=window_id,
                    date=day,
                    starts_at=opened.due,
                    ends_at=closed.due,
                    state=state,
                    boundaries=states,
                    reason=reason,
                )
            )
        return sorted(found, key=lambda i: i.starts_at)

    async def markets(self, district: District | None) -> list[str]:
        """The known markets, of one district or all."""
        found = []
        for market_id in await self.schedules.market_ids():
            schedule = await self.schedules.get(market_id)
            if schedule is not None and (district is None or schedule.district == district):
                found.append(market_id)
        return found

    async def open_now(self, district: District | None) -> list[InstanceState]:
        """Window instances open right now (opened published, not yet closed)."""
        today = local_today(self.clock.now())
        found: list[InstanceState] = []
        for market_id in await self.markets(district):
            for day in (today - timedelta(days=1), today):
                found += [i for i in await self.instances(market_id, day) if i.state == "open"]
        return found

    async def due_between(
        self, start: datetime, end: datetime, district: District | None
    ) -> list[Timer]:
        """Pending timers due in ``[start, end)``, earliest first."""
        found: list[Timer] = []
        for market_id in await self.markets(district):
            found += await self.timers.pending_between(market_id, start, end)
        return sorted(found, key=lambda t: (t.due, t.market_id))
