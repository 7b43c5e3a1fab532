"""Window events consumed by allocation: no-shows, market suspensions, cancelled windows."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from allocation.bootstrap import Allocation
from allocation.domain.errors import Rejected
from allocation.service_layer.markets import MAX_SUSPENSION_ID_LENGTH, DeclareSuspension
from contracts.envelope import RawEnvelope
from contracts.events import (
    BookingCheckInDeadlinePassed,
    CheckInDeadlinePassed,
    MarketResumed,
    MarketSuspended,
    WindowCancelled,
)
from contracts.text import plain_text_problem
from stallkit.messaging import UnprocessableEvent, subscribe_events
from stallkit.redis_client import RedisClient

log = logging.getLogger(__name__)


def suspension_id_of(event: MarketSuspended, envelope: RawEnvelope) -> str:
    """The id a ``market.suspended`` is applied under: its own, else one from the event id."""
    return event.suspension_id or f"sp_{envelope.id}"[:MAX_SUSPENSION_ID_LENGTH]


def register_subscribers(broker: KafkaBroker, redis: RedisClient, allocation: Allocation) -> None:
    """Consume the windows topic in the ``allocation`` group."""

    async def on_deadline(event: CheckInDeadlinePassed, envelope: RawEnvelope) -> None:
        await allocation.bookings.mark_no_shows(
            event.market_id, event.date, event.window_id, event.deadline
        )

    async def on_booking_deadline(
        event: BookingCheckInDeadlinePassed, envelope: RawEnvelope
    ) -> None:
        # A booking made after its window started: its own deadline, timed by windows.
        marked = await allocation.bookings.mark_no_show(event.booking_id, event.deadline)
        if not marked:
            log.info(
                "booking deadline passed, nothing to mark",
                extra={"booking_id": event.booking_id},
            )

    async def on_cancelled(event: WindowCancelled, envelope: RawEnvelope) -> None:
        # The instance will not take place: its bookings end without penalty.
        await allocation.bookings.end_window_bookings(
            event.market_id, event.date, event.window_id, event.reason
        )

    async def on_suspended(event: MarketSuspended, envelope: RawEnvelope) -> None:
        # Applied once per suspension id: a redelivery, or windows re-announcing a suspension
        # allocation declared, finds the id and only finishes cancelling its bookings.
        problem = plain_text_problem(event.reason)
        if problem is not None:
            raise UnprocessableEvent(f"reason: {problem}")
        try:
            await allocation.markets.declare(
                DeclareSuspension(
                    market_id=event.market_id,
                    first_date=event.first_date,
                    last_date=event.last_date,
                    reason=event.reason,
                    origin="windows",
                    suspension_id=suspension_id_of(event, envelope),
                )
            )
        except Rejected as exc:  # unknown market, reversed or too long a range
            raise UnprocessableEvent(f"{exc.code}: {exc.detail or ''}") from exc

    async def on_resumed(event: MarketResumed, envelope: RawEnvelope) -> None:
        try:
            if event.suspension_id is None:
                # Older producers: every suspension of the market lifts, from today on.
                await allocation.markets.lift_all(event.market_id)
            else:
                await allocation.markets.lift(event.market_id, event.suspension_id, announce=False)
        except Rejected as exc:
            if exc.code != "suspension_not_found":
                raise UnprocessableEvent(f"{exc.code}: {exc.detail or ''}") from exc
            log.warning(
                "market.resumed for a suspension allocation does not know",
                extra={"market_id": event.market_id, "suspension_id": event.suspension_id},
            )

    subscribe_events(
        broker,
        allocation.settings,
        redis,
        topics=["windows"],
        group_id="allocation",
        handlers={
            CheckInDeadlinePassed: on_deadline,
            BookingCheckInDeadlinePassed: on_booking_deadline,
            WindowCancelled: on_cancelled,
            MarketSuspended: on_suspended,
            MarketResumed: on_resumed,
        },
    )
