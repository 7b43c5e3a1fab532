"""Catalogue events in, schedule commands out: the edge between Kafka and the domain."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.catalogue import MarketWindow
from contracts.envelope import RawEnvelope
from contracts.events import MarketChanged, ScheduleChanged
from stallkit.messaging import subscribe_events
from stallkit.settings import CommonSettings
from windows.adapters.schedule_store import ScheduleStore
from windows.domain.schedule import ReplaceSchedule, WindowSpec, apply_schedule

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
    """Keeps each market's schedule as the catalogue describes it."""

    def __init__(self, store: ScheduleStore):
        self.store = store

    async def replace(self, command: ReplaceSchedule) -> bool:
        """Apply one schedule change; False when it was older than the stored one."""
        current = await self.store.get(command.market_id)
        updated = apply_schedule(current, command)
        if updated is None:
            log.info("ignoring stale schedule change", extra={"market_id": command.market_id})
            return False
        await self.store.put(updated)
        return True

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
    broker: KafkaBroker, settings: CommonSettings, redis: Redis, projector: ScheduleProjector
) -> None:
    """Register the catalogue subscriber on ``broker`` (before the app is built)."""
    subscribe_events(
        broker,
        settings,
        redis,
        topics=["catalogue"],
        group_id=GROUP_ID,
        handlers={
            MarketChanged: projector.on_market_changed,
            ScheduleChanged: projector.on_schedule_changed,
        },
    )
