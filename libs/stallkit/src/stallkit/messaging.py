"""Kafka through FastStream: the broker, typed event subscribers with dead-lettering, topics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream_fastapi._internal.get_dependant import mark_faststream_decorated
from pydantic import ValidationError
from redis.asyncio import Redis

from contracts.envelope import Envelope, Event, RawEnvelope
from contracts.events import EVENTS_BY_TYPE
from contracts.topics import (
    DEAD_LETTER,
    DLQ_CONSUMER_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    TOPICS,
)
from stallkit.settings import CommonSettings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
#: A handler gets the parsed event and its envelope (id, time, source).
EventHandler = Callable[[Any, RawEnvelope], Awaitable[None]]

HANDLER_ATTEMPTS = 3
DEDUP_TTL_SECONDS = 7 * 24 * 3600


def make_broker(settings: CommonSettings) -> KafkaBroker:
    """A FastStream Kafka broker for this service (acks=all; no idempotent producer)."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=10_000,
        graceful_timeout=5.0,
        logger=logging.getLogger("faststream.kafka"),
        log_level=logging.DEBUG,
        description=f"{settings.service_name} service",
    )


async def start_broker_when_reachable(broker: KafkaBroker, retry_seconds: float = 2.0) -> None:
    """Start the broker, retrying until it answers; a broker outage never stops the service."""
    while True:
        try:
            await broker.start()
            log.info("kafka connected")
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # close what a half-start opened
                await broker.stop()
            raise
        except Exception as exc:
            log.warning("kafka not reachable yet, retrying", extra={"error": repr(exc)})
            with contextlib.suppress(Exception):  # best-effort cleanup of a half-start
                await broker.stop()
            await asyncio.sleep(retry_seconds)


def envelope_headers(envelope: RawEnvelope | Envelope[Any]) -> dict[str, str]:
    """CloudEvents binary-mode attributes as Kafka headers, for routing without the body."""
    return {
        "ce_id": envelope.id,
        "ce_type": envelope.type,
        "ce_source": envelope.source,
        "ce_subject": envelope.subject,
        "ce_time": envelope.time.isoformat(),
    }


async def publish_event(
    broker: KafkaBroker,
    settings: CommonSettings,
    event: Event,
    *,
    time: datetime,
    event_id: str | None = None,
) -> Envelope[Any]:
    """Wrap ``event`` and publish it keyed by its market id (for events without an outbox)."""
    envelope = Envelope.wrap(
        event, source=f"/services/{settings.service_name}", time=time, event_id=event_id
    )
    await broker.publish(
        envelope.model_dump_json().encode(),
        topic=settings.topic(TOPICS[event.topic].name),
        key=event.market_id.encode(),
        headers=envelope_headers(envelope),
    )
    return envelope


async def dead_letter(
    broker: KafkaBroker,
    settings: CommonSettings,
    message: KafkaMessage,
    *,
    reason: str,
    consumer: str,
) -> None:
    """Send a message that can never be processed to the dead-letter topic with the reason."""
    raw = message.raw_message
    source_topic = getattr(raw, "topic", "")
    log.warning(
        "dead-lettering message",
        extra={"reason": reason[:500], "source_topic": source_topic, "consumer": consumer},
    )
    headers = {
        DLQ_REASON_HEADER: reason[:1000],
        DLQ_SOURCE_TOPIC_HEADER: str(source_topic),
        DLQ_CONSUMER_HEADER: consumer,
        "dlq-time": datetime.now(UTC).isoformat(),
    }
    key = getattr(raw, "key", None)
    await broker.publish(
        message.body,
        topic=settings.topic(DEAD_LETTER.name),
        key=key if isinstance(key, bytes) else None,
        headers=headers,
    )


def _raw_decoder(message: KafkaMessage) -> bytes:
    return message.body


def subscribe_events(
    broker: KafkaBroker,
    settings: CommonSettings,
    redis: Redis,
    *,
    topics: list[str],
    group_id: str,
    handlers: Mapping[type[Event], EventHandler],
    dedupe: bool = True,
) -> None:
    """Consume ``topics`` in ``group_id``: parse envelopes, route by type, dead-letter the rest.

    Unknown event types are skipped (other consumers want them); a body that is not a valid
    envelope or event, or a handler that keeps failing, goes to the dead-letter topic and
    consumption goes on. With ``dedupe``, an event id already processed by the group is skipped.
    """
    by_type = {model.event_type(): (model, handler) for model, handler in handlers.items()}
    consumer = f"{settings.service_name}/{group_id}"
    full_topics = [settings.topic(TOPICS[t].name) for t in topics]

    async def handle(message: KafkaMessage) -> None:
        body = message.body
        try:
            envelope = RawEnvelope.from_bytes(body)
        except ValidationError as exc:
            await dead_letter(
                broker, settings, message, reason=f"bad envelope: {exc}", consumer=consumer
            )
            return
        route = by_type.get(envelope.type)
        if route is None:
            if envelope.type not in EVENTS_BY_TYPE:
                log.info("skipping unknown event type", extra={"type": envelope.type[:200]})
            return
        model, handler = route
        try:
            event = envelope.parse_data(model)
        except ValidationError as exc:
            await dead_letter(
                broker, settings, message, reason=f"bad {envelope.type}: {exc}", consumer=consumer
            )
            return
        dedup_key = settings.key("processed", group_id, envelope.id)
        if dedupe and await redis.exists(dedup_key):
            return
        for attempt in range(1, HANDLER_ATTEMPTS + 1):
            try:
                await handler(event, envelope)
                break
            except Exception as exc:
                if attempt == HANDLER_ATTEMPTS:
                    await dead_letter(
                        broker,
                        settings,
                        message,
                        reason=f"handler failed {HANDLER_ATTEMPTS} times: {exc!r}",
                        consumer=consumer,
                    )
                    return
                log.warning("handler failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.2 * 2**attempt)
        if dedupe:
            await redis.set(dedup_key, b"1", ex=DEDUP_TTL_SECONDS)

    # Skip FastAPI-style injection: the handler takes the raw message, parsed here.
    mark_faststream_decorated(handle)
    broker.subscriber(
        *full_topics,
        group_id=f"{settings.topic_prefix}{group_id}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        ack_policy=AckPolicy.ACK,
        decoder=_raw_decoder,
        title=f"{consumer}",
        description=f"{settings.service_name} consumes {', '.join(topics)}",
    )(handle)


async def ensure_topics(bootstrap_servers: str, prefix: str = "") -> list[str]:
    """Create every contract topic that does not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(prefix + t.name, num_partitions=t.partitions, replication_factor=1)
            for t in TOPICS.values()
            if prefix + t.name not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()
