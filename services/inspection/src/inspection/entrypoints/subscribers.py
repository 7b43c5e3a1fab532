"""Catalogue, booking and window events in, projection updates out: the edge between Kafka and
the domain. Every handler is idempotent: a duplicate or a replay changes nothing, so the
consumer keeps no dedup marks, and a partition's fetched batch is folded at once (one round trip
to read what it names, one to write what it changed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from faststream.kafka import KafkaBroker

from contracts.envelope import Event, RawEnvelope
from contracts.events import (
    BookingCancelled,
    BookingCreated,
    BookingEvent,
    BookingNoShow,
    BookingSuspendedByMarket,
    MarketChanged,
    MarketResumed,
    MarketSuspended,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
    ScheduleChanged,
    StallChanged,
    StallCodeIssued,
    StallCodeRevoked,
    WindowCancelled,
    WindowClosed,
    WindowEvent,
    WindowOpened,
)
from inspection.adapters.expectation_store import (
    ProjectionStore,
    RedisExpectationStore,
    StagedExpectations,
)
from inspection.domain.expected import (
    BookingEnd,
    ExpectedBooking,
    GeoPoint,
    MarketFacts,
    MarketSchedule,
    Slot,
    StallFacts,
    after_booking_created,
    after_booking_ended,
    after_code_issued,
    after_code_revoked,
    supersedes,
)
from inspection.domain.market_time import (
    InstanceOverride,
    Suspension,
    after_suspension_declared,
    after_suspension_lifted,
    after_window_cancelled,
    after_window_closed,
    after_window_opened,
    in_force_from,
    local_date,
)
from stallkit.messaging import BatchHandler, EventHandler, subscribe_events
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings

log = logging.getLogger(__name__)

GROUP_ID = "inspection"
#: A fold of one event into a suspension or a window instance's record.
_SuspensionChange = Callable[[Suspension | None], Suspension]
_OverrideChange = Callable[[InstanceOverride | None], InstanceOverride]
#: Longest suspension id (as ``market.suspended`` allows).
MAX_SUSPENSION_ID_LENGTH = 64


def suspension_id_of(event: MarketSuspended, envelope: RawEnvelope) -> str:
    """The id a ``market.suspended`` is kept under: its own, else one from the event id (the
    id allocation gives it too, so both words about it meet)."""
    return event.suspension_id or f"sp_{envelope.id}"[:MAX_SUSPENSION_ID_LENGTH]


class ExpectationProjector:
    """Keeps "who should be where", when each market's windows run, and the catalogue facts
    patrols need."""

    def __init__(self, store: ProjectionStore):
        self.store = store

    # -- catalogue ------------------------------------------------------------------------------

    async def on_market_changed(self, event: MarketChanged, envelope: RawEnvelope) -> None:
        """Remember the market's facts, location and schedule (unless newer ones are known)."""
        market = event.market
        current = await self.store.get_market(market.id)
        if current is None or supersedes(envelope.time, current.as_of):
            await self.store.put_market(
                MarketFacts(
                    market_id=market.id,
                    district=market.district.value,
                    name_zh=market.name_zh,
                    name_en=market.name_en,
                    location=GeoPoint(market.location.lat, market.location.lon),
                    zones=tuple(z.value for z in market.zones),
                    as_of=envelope.time,
                )
            )
        await self._schedule(market.id, MarketSchedule(tuple(market.windows), envelope.time))

    async def on_schedule_changed(self, event: ScheduleChanged, envelope: RawEnvelope) -> None:
        """The market's weekly schedule was replaced."""
        await self._schedule(event.market_id, MarketSchedule(tuple(event.windows), envelope.time))

    async def _schedule(self, market_id: str, schedule: MarketSchedule) -> None:
        current = await self.store.get_schedule(market_id)
        if current is None or supersedes(schedule.as_of, current.as_of):
            await self.store.put_schedule(market_id, schedule)
        else:
            log.info("ignoring stale schedule change", extra={"market_id": market_id})

    async def on_stall_changed(self, event: StallChanged, envelope: RawEnvelope) -> None:
        """Remember the stall's category and whether it is active."""
        stall = event.stall
        await self.store.put_stall(
            StallFacts(stall.id, stall.market_id, stall.category.value, stall.active)
        )

    async def on_code_issued(self, event: StallCodeIssued, envelope: RawEnvelope) -> None:
        """A new code version was issued for the stall; older ones are superseded."""
        current = await self.store.get_code_versions(event.market_id, event.stall_id)
        updated = after_code_issued(current, event.code_version)
        if updated != current:
            await self.store.put_code_versions(event.market_id, event.stall_id, updated)

    async def on_code_revoked(self, event: StallCodeRevoked, envelope: RawEnvelope) -> None:
        """A code version of the stall was revoked."""
        current = await self.store.get_code_versions(event.market_id, event.stall_id)
        updated = after_code_revoked(current, event.code_version)
        if updated != current:
            await self.store.put_code_versions(event.market_id, event.stall_id, updated)

    async def on_suspension_declared(
        self, event: MarketSuspensionDeclared, envelope: RawEnvelope
    ) -> None:
        """A suspension was declared: from its first date (or now) no window starts."""
        await self._suspension(
            event.market_id,
            event.suspension_id,
            lambda s: after_suspension_declared(
                s,
                event.suspension_id,
                event.first_date,
                event.last_date,
                event.reason,
                in_force_from(event.first_date, envelope.time),
            ),
        )

    async def on_suspension_lifted(
        self, event: MarketSuspensionLifted, envelope: RawEnvelope
    ) -> None:
        """A suspension was lifted early: its dates from ``reopened_from`` on reopen."""
        await self._suspension(
            event.market_id,
            event.suspension_id,
            lambda s: after_suspension_lifted(
                s, event.suspension_id, envelope.time, event.reopened_from
            ),
        )

    async def _suspension(
        self,
        market_id: str,
        suspension_id: str,
        change: _SuspensionChange,
    ) -> None:
        current = await self.store.get_suspension(market_id, suspension_id)
        updated = change(current)
        if updated != current:
            await self.store.put_suspension(market_id, updated)

    # -- bookings -------------------------------------------------------------------------------

    async def on_booking_created(self, event: BookingCreated, envelope: RawEnvelope) -> None:
        """Expect the vendor at the stall for the window."""
        booking = ExpectedBooking(
            booking_id=event.booking_id,
            vendor_id=event.vendor_id,
            market_id=event.market_id,
            stall_id=event.stall_id,
            date=event.date,
            window_id=event.window_id,
            category=event.category.value,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
        )
        current = await self.store.get_expected(event.market_id, booking.slot)
        ended = await self.store.has_ended(event.market_id, event.date, event.booking_id)
        updated = after_booking_created(current, booking, already_ended=ended)
        if updated is not None:
            await self.store.put_expected(updated)

    async def end(self, event: BookingEvent, why: BookingEnd) -> None:
        """The booking no longer puts its vendor at the stall."""
        slot = Slot(event.stall_id, event.date, event.window_id)
        await self.store.mark_ended(event.market_id, event.date, event.booking_id)
        current = await self.store.get_expected(event.market_id, slot)
        if after_booking_ended(current, event.booking_id):
            await self.store.clear_expected(event.market_id, slot)
            log.info(
                "booking no longer expected",
                extra={"booking_id": event.booking_id, "reason": why.value},
            )

    async def on_booking_cancelled(self, event: BookingCancelled, envelope: RawEnvelope) -> None:
        """The vendor cancelled."""
        await self.end(event, BookingEnd.CANCELLED)

    async def on_booking_suspended(
        self, event: BookingSuspendedByMarket, envelope: RawEnvelope
    ) -> None:
        """The market was suspended for the booking's date."""
        await self.end(event, BookingEnd.SUSPENDED)

    async def on_booking_no_show(self, event: BookingNoShow, envelope: RawEnvelope) -> None:
        """The vendor did not check in; the stall was released."""
        await self.end(event, BookingEnd.NO_SHOW)

    # -- windows --------------------------------------------------------------------------------

    async def _instance(self, event: WindowEvent, change: _OverrideChange) -> None:
        current = await self.store.get_override(event.market_id, event.date, event.window_id)
        updated = change(current)
        if updated != current:
            await self.store.put_override(event.market_id, event.date, event.window_id, updated)

    async def on_window_opened(self, event: WindowOpened, envelope: RawEnvelope) -> None:
        """The instance started (the event's time is its start); it runs until it closes."""
        await self._instance(
            event, lambda ov: after_window_opened(ov, envelope.time, event.closes_at)
        )

    async def on_window_closed(self, event: WindowClosed, envelope: RawEnvelope) -> None:
        """The instance closed: at its end, or earlier with a reason (emergency closure)."""
        await self._instance(event, lambda ov: after_window_closed(ov, envelope.time, event.reason))
        if event.reason is not None:
            log.info(
                "window closed early",
                extra={"market_id": event.market_id, "window": event.subject()},
            )

    async def on_window_cancelled(self, event: WindowCancelled, envelope: RawEnvelope) -> None:
        """The instance will not take place (schedule change, suspension or closure)."""
        await self._instance(
            event,
            lambda ov: after_window_cancelled(ov, envelope.time, event.cause, event.reason),
        )

    async def on_market_suspended(self, event: MarketSuspended, envelope: RawEnvelope) -> None:
        """The suspension is in force from now on (the event's time)."""
        suspension_id = suspension_id_of(event, envelope)
        await self._suspension(
            event.market_id,
            suspension_id,
            lambda s: after_suspension_declared(
                s, suspension_id, event.first_date, event.last_date, event.reason, envelope.time
            ),
        )

    async def on_market_resumed(self, event: MarketResumed, envelope: RawEnvelope) -> None:
        """One suspension (or, without an id, every one in force) ends from today on."""
        if event.suspension_id is None:
            await self.store.add_resume_all(event.market_id, envelope.time)
            return
        suspension_id = event.suspension_id
        await self._suspension(
            event.market_id,
            suspension_id,
            lambda s: after_suspension_lifted(
                s, suspension_id, envelope.time, local_date(envelope.time)
            ),
        )


def projection_handlers(projector: ExpectationProjector) -> dict[type[Event], EventHandler]:
    """The event types the projection folds in, and the handler of each."""
    return {
        MarketChanged: projector.on_market_changed,
        ScheduleChanged: projector.on_schedule_changed,
        StallChanged: projector.on_stall_changed,
        StallCodeIssued: projector.on_code_issued,
        StallCodeRevoked: projector.on_code_revoked,
        MarketSuspensionDeclared: projector.on_suspension_declared,
        MarketSuspensionLifted: projector.on_suspension_lifted,
        BookingCreated: projector.on_booking_created,
        BookingCancelled: projector.on_booking_cancelled,
        BookingSuspendedByMarket: projector.on_booking_suspended,
        BookingNoShow: projector.on_booking_no_show,
        WindowOpened: projector.on_window_opened,
        WindowClosed: projector.on_window_closed,
        WindowCancelled: projector.on_window_cancelled,
        MarketSuspended: projector.on_market_suspended,
        MarketResumed: projector.on_market_resumed,
    }


def batch_projection(store: RedisExpectationStore) -> BatchHandler:
    """Folds a partition's batch of events in order, against one :class:`StagedExpectations`:
    the slots, ended bookings and window instances the bookings and window events name are read
    in one round trip, and every change is written in one."""

    async def apply(items: Sequence[tuple[Any, RawEnvelope]]) -> None:
        staged = StagedExpectations(store)
        slots, ended, overrides = [], [], []
        for event, _ in items:
            if isinstance(event, BookingEvent):
                slots.append((event.market_id, Slot(event.stall_id, event.date, event.window_id)))
                if isinstance(event, BookingCreated):
                    ended.append((event.market_id, event.date, event.booking_id))
            elif isinstance(event, WindowEvent):
                overrides.append((event.market_id, event.date, event.window_id))
        await staged.prefetch(slots=slots, ended=ended, overrides=overrides)
        handlers = projection_handlers(ExpectationProjector(staged))
        for event, envelope in items:
            await handlers[type(event)](event, envelope)
        await staged.flush()

    return apply


def subscribe_projection(
    broker: KafkaBroker,
    settings: CommonSettings,
    redis: RedisClient,
    projector: ExpectationProjector,
    *,
    group_id: str = GROUP_ID,
) -> None:
    """Register the catalogue, bookings and windows subscriber on ``broker`` (before the app is
    built); ``group_id`` is the consumer group (another one rebuilds from the beginning).

    On Redis, batches are folded at once (:func:`batch_projection`), without dedup marks: the
    folds are idempotent. Another store gets the events one by one, deduplicated.
    """
    store = projector.store
    batch = batch_projection(store) if isinstance(store, RedisExpectationStore) else None
    subscribe_events(
        broker,
        settings,
        redis,
        topics=["catalogue", "bookings", "windows"],
        group_id=group_id,
        handlers=projection_handlers(projector),
        dedupe=batch is None,
        batch_handler=batch,
    )
