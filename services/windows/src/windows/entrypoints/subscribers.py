"""Catalogue events in, schedule commands out: the edge between Kafka and the domain."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from faststream.kafka import KafkaBroker

from contracts.catalogue import MarketWindow
from contracts.envelope import RawEnvelope
from contracts.events import (
    BookingCreated,
    MarketChanged,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
    ScheduleChanged,
)
from stallkit.messaging import subscribe_events
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings
from windows.adapters.schedule_store import ScheduleStore
from windows.domain.plan import Suspension
from windows.domain.schedule import ReplaceSchedule, WindowSpec, apply_schedule
from windows.service_layer.timeline import MarketUnknown, Timeline

log = logging.getLogger(__name__)

GROUP_ID = "windows"


def window_spec(window: MarketWindow) -> WindowSpec:
    """The domain's view of a contract window."""
    return WindowSpec(
        id=window.id,
        name_zh=window.name_zh,
        name_en=window.name_en,
        days=tuple(sorted(window.days)),
        start=window.start,
        end=window.end,
    )


class ScheduleProjector:
    """Keeps each market's schedule as the catalogue describes it, and its timers in line."""

    def __init__(self, store: ScheduleStore, timeline: Timeline | None = None):
        self.store = store
        self.timeline = timeline

    async def replace(self, command: ReplaceSchedule) -> bool:
        """Apply one schedule change; False when it was older than the stored one."""
        current = await self.store.get(command.market_id)
        updated = apply_schedule(current, command)
        if updated is None:
            log.info("ignoring stale schedule change", extra={"market_id": command.market_id})
            return False
        await self.store.put(updated)
        if self.timeline is not None:
            await self.timeline.replan(command.market_id)
            await self._unpark(command.market_id)
        return True

    async def on_suspension_declared(
        self, event: MarketSuspensionDeclared, envelope: RawEnvelope
    ) -> None:
        """Allocation suspended a market for a date range: no window opens inside it."""
        if self.timeline is None:
            return
        await self.timeline.suspension_declared(
            event.market_id,
            Suspension(
                id=event.suspension_id,
                first_date=event.first_date,
                last_date=event.last_date,
                reason=event.reason,
                declared_at=envelope.time,
            ),
        )

    async def on_suspension_lifted(
        self, event: MarketSuspensionLifted, envelope: RawEnvelope
    ) -> None:
        """A suspension was lifted early: the later windows are restored."""
        if self.timeline is None:
            return
        known = await self.timeline.suspension_lifted(
            event.market_id, event.suspension_id, envelope.time, event.reopened_from
        )
        if not known:
            log.warning(
                "lift of a suspension never declared",
                extra={"market_id": event.market_id, "suspension_id": event.suspension_id},
            )

    async def on_booking_created(self, event: BookingCreated, envelope: RawEnvelope) -> None:
        """A booking made after its window started gets a timer for its own deadline."""
        if self.timeline is None:
            return
        try:
            await self.timeline.booking_created(event, envelope.time)
        except MarketUnknown:
            # Read before its market's catalogue event (the two topics are read in no set order,
            # and a new consumer group rebuilding from the start reads whole partitions at a
            # time): kept until the market arrives, then timed as if it had come after it.
            payload = json.dumps({"event": event.model_dump(mode="json"),
                                  "booked_at": envelope.time.isoformat()})  # fmt: skip
            await self.store.park_booking(event.market_id, event.booking_id, payload)
            log.info(
                "booking parked until its market is known",
                extra={"market_id": event.market_id, "booking_id": event.booking_id},
            )
            # The market may have arrived at another replica between the check and the parking.
            await self._unpark(event.market_id)

    async def _unpark(self, market_id: str) -> None:
        """Time the market's parked bookings, now that it is known (each timer id is fixed by
        its booking, so timing one twice changes nothing)."""
        assert self.timeline is not None
        for booking_id, payload in (await self.store.parked_bookings(market_id)).items():
            data = json.loads(payload)
            try:
                await self.timeline.booking_created(
                    BookingCreated.model_validate(data["event"]),
                    datetime.fromisoformat(data["booked_at"]),
                )
            except MarketUnknown:
                return  # still unknown (a schedule without its district): wait for more
            await self.store.unpark_booking(market_id, booking_id)

    async def on_market_changed(self, event: MarketChanged, envelope: RawEnvelope) -> None:
        """A market was created or changed: take its district and whole schedule."""
        await self.replace(
            ReplaceSchedule(
                market_id=event.market.id,
                district=event.market.district.value,
                windows=tuple(window_spec(w) for w in event.market.windows),
                as_of=envelope.time,
            )
        )

    async def on_schedule_changed(self, event: ScheduleChanged, envelope: RawEnvelope) -> None:
        """A market's schedule was replaced."""
        await self.replace(
            ReplaceSchedule(
                market_id=event.market_id,
                district=None,
                windows=tuple(window_spec(w) for w in event.windows),
                as_of=envelope.time,
            )
        )


def subscribe_catalogue(
    broker: KafkaBroker, settings: CommonSettings, redis: RedisClient, projector: ScheduleProjector
) -> None:
    """Register the catalogue subscriber on ``broker`` (before the app is built)."""
    subscribe_events(
        broker,
        settings,
        redis,
        topics=["catalogue", "bookings"],
        group_id=GROUP_ID,
        handlers={
            MarketChanged: projector.on_market_changed,
            ScheduleChanged: projector.on_schedule_changed,
            MarketSuspensionDeclared: projector.on_suspension_declared,
            MarketSuspensionLifted: projector.on_suspension_lifted,
            BookingCreated: projector.on_booking_created,
        },
    )
