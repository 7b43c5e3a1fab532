"""Catalogue and booking events in, projection updates out: the edge between Kafka and domain."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.envelope import RawEnvelope
from contracts.events import (
    BookingCancelled,
    BookingCreated,
    BookingEvent,
    BookingNoShow,
    BookingSuspendedByMarket,
    MarketChanged,
    StallChanged,
)
from inspection.adapters.expectation_store import ExpectationStore
from inspection.domain.expected import (
    BookingEnd,
    ExpectedBooking,
    MarketFacts,
    Slot,
    StallFacts,
    after_booking_created,
    after_booking_ended,
)
from stallkit.messaging import subscribe_events
from stallkit.settings import CommonSettings

log = logging.getLogger(__name__)

GROUP_ID = "inspection"


class ExpectationProjector:
    """Keeps "who should be where" and the catalogue facts patrols need."""

    def __init__(self, store: ExpectationStore):
        self.store = store

    async def on_market_changed(self, event: MarketChanged, envelope: RawEnvelope) -> None:
        """Remember the market's district."""
        await self.store.put_market(MarketFacts(event.market.id, event.market.district.value))

    async def on_stall_changed(self, event: StallChanged, envelope: RawEnvelope) -> None:
        """Remember the stall's category and whether it is active."""
        stall = event.stall
        await self.store.put_stall(
            StallFacts(stall.id, stall.market_id, stall.category.value, stall.active)
        )

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


def subscribe_projection(
    broker: KafkaBroker,
    settings: CommonSettings,
    redis: Redis,
    projector: ExpectationProjector,
) -> None:
    """Register the catalogue and bookings subscriber on ``broker`` (before the app is built)."""
    subscribe_events(
        broker,
        settings,
        redis,
        topics=["catalogue", "bookings"],
        group_id=GROUP_ID,
        handlers={
            MarketChanged: projector.on_market_changed,
            StallChanged: projector.on_stall_changed,
            BookingCreated: projector.on_booking_created,
            BookingCancelled: projector.on_booking_cancelled,
            BookingSuspendedByMarket: projector.on_booking_suspended,
            BookingNoShow: projector.on_booking_no_show,
        },
    )
