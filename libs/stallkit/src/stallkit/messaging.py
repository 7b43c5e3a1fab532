"""Kafka through FastStream: the broker, typed event subscribers that lose nothing, topics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream_fastapi._internal.get_dependant import mark_faststream_decorated
from redis.exceptions import (
    ClusterError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.envelope import Envelope, Event, RawEnvelope
from contracts.events import EVENTS_BY_TYPE
from contracts.topics import (
    DEAD_LETTER,
    DLQ_CONSUMER_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    TOPICS,
)
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
#: A handler gets the parsed event and its envelope (id, time, source).
EventHandler = Callable[[Any, RawEnvelope], Awaitable[None]]
#: Applies a partition's events of one fetched batch at once, in their order (idempotently).
BatchHandler = Callable[[Sequence[tuple[Any, RawEnvelope]]], Awaitable[None]]

#: Attempts of a handler failing otherwise than on infrastructure, before dead-lettering.
HANDLER_ATTEMPTS = 5
#: Backoff between retries: the first delay, then doubling up to the cap.
RETRY_FIRST_DELAY = 0.5
RETRY_MAX_DELAY = 5.0
DEDUP_TTL_SECONDS = 7 * 24 * 3600
#: The most records a consumer takes in one batch (one offset commit per batch).
BATCH_RECORDS = 1000
#: Set on dead-lettered messages with the dlq-* headers of ``contracts.topics``.
DLQ_TIME_HEADER = "dlq-time"
#: Set by ``stallctl dlq replay`` on a re-sent message: ``<topic>:<partition>:<offset>``.
DLQ_REPLAYED_FROM_HEADER = "dlq-replayed-from"


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


class UnprocessableEvent(Exception):
    """Raised by a handler: this event can never be applied; it goes to the dead-letter topic."""


#: Failures of what a consumer depends on: retried for as long as they last.
_INFRA_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,  # also BusyLoadingError (Redis loading its data after a restart)
    RedisTimeoutError,
    ReadOnlyError,
    # A Redis Cluster failing over or resharding: CLUSTERDOWN, MASTERDOWN, TRYAGAIN replies
    # (parsed into these, their prefix gone) and a slot no node serves for the moment.
    ClusterError,
    TryAgainError,
    SlotNotCoveredError,
    KafkaError,
    OSError,  # also ConnectionError and TimeoutError
)
#: Redis error replies that say the server cannot serve now, not that the command is wrong.
_INFRA_REPLIES = ("OOM", "MISCONF", "BUSY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN")


def is_infrastructure_failure(exc: BaseException) -> bool:
    """True for a Redis, Kafka or network failure, also when it caused ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _INFRA_ERRORS):
            return True
        if isinstance(current, ResponseError) and str(current).startswith(_INFRA_REPLIES):
            return True
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__
    return False


def describe_error(exc: BaseException) -> str:
    """``Type: message`` (some libraries' ``repr`` leaves the message out)."""
    return f"{type(exc).__name__}: {exc}"[:500]


def retry_delay(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): doubling from 0.5 s, capped, some jitter."""
    delay = min(RETRY_MAX_DELAY, RETRY_FIRST_DELAY * float(2 ** min(attempt - 1, 16)))
    return delay * random.uniform(0.8, 1.0)


@dataclass
class ConsumerStall:
    """A consumer retrying an infrastructure failure: its last error, since when, how often."""

    error: str
    since: datetime
    attempts: int


class ConsumerHealth:
    """Which consumers of one broker are stuck retrying an infrastructure failure."""

    def __init__(self) -> None:
        self._stalls: dict[str, ConsumerStall] = {}

    def failed(self, consumer: str, error: BaseException) -> None:
        """Record one more failed attempt of ``consumer``."""
        stall = self._stalls.get(consumer)
        if stall is None:
            self._stalls[consumer] = ConsumerStall(describe_error(error), datetime.now(UTC), 1)
        else:
            stall.error, stall.attempts = describe_error(error), stall.attempts + 1

    def recovered(self, consumer: str) -> None:
        """``consumer`` moves again."""
        if self._stalls.pop(consumer, None) is not None:
            log.info("consumer recovered", extra={"consumer": consumer})

    def stuck(self) -> dict[str, dict[str, Any]]:
        """The stuck consumers, by name: last error, since when, attempts so far."""
        return {
            name: {"error": s.error, "since": s.since.isoformat(), "attempts": s.attempts}
            for name, s in self._stalls.items()
        }


_HEALTH: weakref.WeakKeyDictionary[KafkaBroker, ConsumerHealth] = weakref.WeakKeyDictionary()


def consumer_health(broker: KafkaBroker) -> ConsumerHealth:
    """The health of the consumers registered on ``broker`` (what ``/readyz`` reports)."""
    return _HEALTH.setdefault(broker, ConsumerHealth())


async def dead_letter(
    broker: KafkaBroker,
    settings: CommonSettings,
    record: Any,
    *,
    reason: str,
    consumer: str,
) -> None:
    """Send a record that can never be processed to the dead-letter topic with the reason.

    ``record`` is the consumed ``ConsumerRecord`` (topic, key, value, headers). The body, key
    and headers stay as they were (``stallctl dlq replay`` re-sends them); the ``dlq-*``
    headers say why, from where and by whom.
    """
    raw = record
    source_topic = getattr(raw, "topic", "")
    log.warning(
        "dead-lettering message",
        extra={"reason": reason[:500], "source_topic": source_topic, "consumer": consumer},
    )
    headers = {
        name: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        for name, value in getattr(raw, "headers", None) or ()
    }
    headers |= {
        DLQ_REASON_HEADER: reason[:1000],
        DLQ_SOURCE_TOPIC_HEADER: str(source_topic),
        DLQ_CONSUMER_HEADER: consumer,
        DLQ_TIME_HEADER: datetime.now(UTC).isoformat(),
    }
    key = getattr(raw, "key", None)
    await broker.publish(
        getattr(raw, "value", None) or b"",
        topic=settings.topic(DEAD_LETTER.name),
        key=key if isinstance(key, bytes) else None,
        headers=headers,
    )


class _ShuttingDown(Exception):
    """The subscriber stops while a message waits for a retry."""


class _EventConsumer:
    """One consumer of ``subscribe_events``: each message is applied once or dead-lettered."""

    def __init__(
        self,
        broker: KafkaBroker,
        settings: CommonSettings,
        redis: RedisClient,
        *,
        group_id: str,
        handlers: Mapping[type[Event], EventHandler],
        dedupe: bool,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        self.broker, self.settings, self.redis = broker, settings, redis
        self.group_id, self.dedupe = group_id, dedupe
        self.batch_handler = batch_handler
        self.by_type = {model.event_type(): (model, h) for model, h in handlers.items()}
        #: The versions this consumer reads of each event it reads (``booking.created`` ...).
        self.versions: dict[str, list[str]] = {}
        for event_type in self.by_type:
            self.versions.setdefault(unversioned(event_type), []).append(event_type)
        self.name = f"{settings.service_name}/{group_id}"
        self.health = consumer_health(broker)
        #: The FastStream subscriber; its ``running`` turns false when it is being stopped.
        self.subscriber: Any = None
        #: The partitions (topic, partition) waiting out an infrastructure failure now.
        self._failing: set[tuple[str, int]] = set()

    async def handle(self, message: KafkaMessage) -> None:
        """Process a fetched batch, then commit it; at shutdown mid-batch, commit nothing.

        Each partition's records are processed in their order, the partitions of the batch
        side by side (Kafka orders nothing across partitions). One commit covers the batch.
        """
        raw = message.raw_message
        records = list(raw) if isinstance(raw, list | tuple) else [raw]
        by_partition: dict[tuple[str, int], list[Any]] = {}
        for record in records:
            by_partition.setdefault((record.topic, record.partition), []).append(record)
        outcomes = await asyncio.gather(
            *(self._process_in_order(rs) for rs in by_partition.values()), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if any(isinstance(f, _ShuttingDown) for f in failures):
            log.warning("stopping before the batch was processed; it will come again")
            with contextlib.suppress(Exception):
                await message.nack()  # rewind every partition to the batch; nothing committed
            return
        if failures:  # a bug here, not in a handler (those are caught): nothing is committed
            raise failures[0]
        try:
            await message.ack()  # commits the positions past this batch
        except (KafkaError, OSError) as exc:
            # A rebalance or a broker outage: it comes again and is skipped as processed.
            log.warning(
                "offset commit failed", extra={"error": describe_error(exc), "consumer": self.name}
            )

    def _stopping(self) -> bool:
        return self.subscriber is not None and not self.subscriber.running

    async def _process_in_order(self, records: list[Any]) -> None:
        if self.batch_handler is not None:
            await self._process_together(records, self.batch_handler)
            return
        for record in records:
            if self._stopping():
                raise _ShuttingDown
            await self._process(record)

    async def _process(self, record: Any) -> None:
        parsed = await self._parse(record)
        if parsed is not None:
            await self._apply(record, *parsed)

    async def _parse(self, record: Any) -> tuple[RawEnvelope, Event, EventHandler] | None:
        """The record's envelope, event and handler; None when it was dead-lettered or is
        for other consumers."""
        try:
            envelope = RawEnvelope.from_bytes(record.value or b"")
        except ValueError as exc:  # pydantic's ValidationError included
            await self._dead_letter(record, f"bad envelope: {exc}")
            return None
        route = self.by_type.get(envelope.type)
        if route is None:
            read = self.versions.get(unversioned(envelope.type))
            if read:  # an event this consumer reads, in a version it cannot read
                reads = ", ".join(sorted(read))
                await self._dead_letter(record, f"unknown version {envelope.type}: reads {reads}")
                return None
            if envelope.type not in EVENTS_BY_TYPE:
                log.info("skipping unknown event type", extra={"type": envelope.type[:200]})
            return None
        model, handler = route
        try:
            event = envelope.parse_data(model)
        except ValueError as exc:
            await self._dead_letter(record, f"bad {envelope.type}: {exc}")
            return None
        return envelope, event, handler

    async def _process_together(self, records: list[Any], apply_all: BatchHandler) -> None:
        """One partition's records of a batch through the batch handler, in one call.

        What does not parse is dead-lettered first, as one by one. An infrastructure failure
        is waited out and the whole call made again (the handler is idempotent); any other
        failure sends each event through its own handler, so that the one at fault is retried
        and dead-lettered alone while the others are applied.
        """
        if self._stopping():
            raise _ShuttingDown
        parsed = [(record, await self._parse(record)) for record in records]
        items = [(record, found) for record, found in parsed if found is not None]
        if not items:
            return
        first = items[0][0]
        attempt = 0
        while True:
            try:
                await apply_all([(event, envelope) for _, (envelope, event, _) in items])
            except Exception as exc:
                if is_infrastructure_failure(exc):
                    attempt += 1
                    await self._wait_out(first, exc, attempt)
                    continue
                log.warning(
                    "batch handler failed; applying its events one by one",
                    extra={"consumer": self.name, "error": describe_error(exc)},
                )
                for record, (envelope, event, handler) in items:
                    if self._stopping():
                        raise _ShuttingDown from exc
                    await self._apply(record, envelope, event, handler)
                return
            self._recovered(first)
            return

    async def _apply(
        self, record: Any, envelope: RawEnvelope, event: Event, handler: EventHandler
    ) -> None:
        dedup_key = self.settings.key("processed", self.group_id, envelope.id)
        applied = False
        failures = infra_failures = 0
        while True:
            try:
                if not applied:
                    if self.dedupe and await self.redis.exists(dedup_key):
                        break
                    await handler(event, envelope)
                    applied = True
                if self.dedupe:  # only once the handler succeeded
                    await self.redis.set(dedup_key, b"1", ex=DEDUP_TTL_SECONDS)
                break
            except UnprocessableEvent as exc:
                self._recovered(record)
                await self._dead_letter(record, f"unprocessable {envelope.type}: {exc}")
                return
            except Exception as exc:
                if is_infrastructure_failure(exc):
                    infra_failures += 1
                    await self._wait_out(record, exc, infra_failures)
                    continue
                if applied:  # the dedup mark could not be written: applied all the same
                    log.error("dedup mark not written", extra={"error": describe_error(exc)})
                    break
                failures += 1
                if failures >= HANDLER_ATTEMPTS:
                    self._recovered(record)
                    reason = f"handler failed {failures} times: {describe_error(exc)}"
                    await self._dead_letter(record, reason)
                    return
                log.warning("handler failed, retrying", extra={"error": describe_error(exc)})
                await self._pause(retry_delay(failures))
        self._recovered(record)

    async def _dead_letter(self, record: Any, reason: str) -> None:
        """Publish to the dead-letter topic, retrying until it is there."""
        attempts = 0
        while True:
            try:
                await dead_letter(
                    self.broker, self.settings, record, reason=reason, consumer=self.name
                )
                break
            except Exception as exc:  # never commit a message that is nowhere
                attempts += 1
                await self._wait_out(record, exc, attempts)
        self._recovered(record)

    def _recovered(self, record: Any) -> None:
        """``record``'s partition moves again; the consumer is stuck while any other is not."""
        self._failing.discard((record.topic, record.partition))
        if not self._failing:
            self.health.recovered(self.name)

    async def _wait_out(self, record: Any, exc: Exception, attempt: int) -> None:
        """Mark the consumer stuck and wait before retrying an infrastructure failure."""
        self._failing.add((record.topic, record.partition))
        self.health.failed(self.name, exc)
        level = logging.ERROR if attempt == 1 else logging.WARNING
        log.log(
            level,
            "consumer waits for an infrastructure failure to pass; offset not committed",
            extra={"consumer": self.name, "error": describe_error(exc), "attempt": attempt},
        )
        await self._pause(retry_delay(attempt))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but raise :class:`_ShuttingDown` as soon as the subscriber is being stopped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.subscriber is None or self.subscriber.running:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.1))
        raise _ShuttingDown


def unversioned(event_type: str) -> str:
    """The event type without its version: ``...booking.created.v1`` -> ``...booking.created``."""
    name, dot_v, version = event_type.rpartition(".v")
    return name if dot_v and version.isdigit() else event_type


def _raw_decoder(message: KafkaMessage) -> Any:
    return message.body


def subscribe_events(
    broker: KafkaBroker,
    settings: CommonSettings,
    redis: RedisClient,
    *,
    topics: list[str],
    group_id: str,
    handlers: Mapping[type[Event], EventHandler],
    dedupe: bool = True,
    batch_handler: BatchHandler | None = None,
) -> None:
    """Consume ``topics`` in ``group_id``: parse envelopes, route by type, apply each event once.

    Event types the handlers do not name are skipped (other consumers want them). Dead-lettered,
    and consumption goes on: a body that is not a valid envelope or event, a version the
    handlers do not read of an event they read (replay it once they do), an event whose handler
    raises :class:`UnprocessableEvent`, and one whose handler fails ``HANDLER_ATTEMPTS`` times
    otherwise. A Redis, Kafka or network failure (:func:`is_infrastructure_failure`) is retried
    with capped backoff for as long as it lasts, offset uncommitted; ``/readyz`` shows it. With
    ``dedupe``, an event id the group processed already is skipped.

    With ``batch_handler`` (whose writes must be idempotent, so not with ``dedupe``), the events
    of a partition in one fetched batch are applied by one call of it, in their order; when it
    fails otherwise than by infrastructure, they go through ``handlers`` one by one instead.
    """
    if batch_handler is not None and dedupe:
        raise ValueError("a batch handler applies events idempotently: no dedup marks")
    consumer = _EventConsumer(
        broker,
        settings,
        redis,
        group_id=group_id,
        handlers=handlers,
        dedupe=dedupe,
        batch_handler=batch_handler,
    )

    async def handle(message: KafkaMessage) -> None:
        await consumer.handle(message)

    # Skip FastAPI-style injection: the handler takes the raw message, parsed here.
    mark_faststream_decorated(handle)
    # MANUAL: offsets are committed only once a batch's records are applied or dead-lettered.
    # A batch is what the consumer has fetched, up to BATCH_RECORDS; it does not wait to fill.
    subscriber = broker.subscriber(
        *[settings.topic(TOPICS[t].name) for t in topics],
        group_id=f"{settings.topic_prefix}{group_id}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        batch=True,
        max_records=BATCH_RECORDS,
        batch_timeout_ms=settings.kafka_fetch_max_wait_ms,
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_decoder,
        title=consumer.name,
        description=f"{settings.service_name} consumes {', '.join(topics)}",
    )
    subscriber(handle)
    consumer.subscriber = subscriber


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
