"""Window events consumed by allocation: no-shows and market suspensions."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from allocation.bootstrap import Allocation
from contracts.envelope import RawEnvelope
from contracts.events import CheckInDeadlinePassed, MarketResumed, MarketSuspended
from stallkit.messaging import subscribe_events


def register_subscribers(broker: KafkaBroker, redis: Redis, allocation: Allocation) -> None:
    """Consume the windows topic in the ``allocation`` group."""

    async def on_deadline(event: CheckInDeadlinePassed, envelope: RawEnvelope) -> None:
        await allocation.bookings.mark_no_shows(
            event.market_id, event.date, event.window_id, event.deadline
        )

    async def on_suspended(event: MarketSuspended, envelope: RawEnvelope) -> None:
        await allocation.markets.suspend(
            event.market_id,
            event.first_date,
            event.last_date,
            event.reason,
            f"sp_{envelope.id}",
            announce=False,
        )

    async def on_resumed(event: MarketResumed, envelope: RawEnvelope) -> None:
        await allocation.markets.resume(event.market_id)

    subscribe_events(
        broker,
        allocation.settings,
        redis,
        topics=["windows"],
        group_id="allocation",
        handlers={
            CheckInDeadlinePassed: on_deadline,
            MarketSuspended: on_suspended,
            MarketResumed: on_resumed,
        },
    )
