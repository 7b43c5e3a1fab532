"""Transactional outbox on a Redis stream, relayed to Kafka afterwards.

A state change and its event are written in one Redis transaction (or Lua script) that also
XADDs the event to the outbox stream; the relay publishes entries in order and removes them
only once Kafka acknowledged them (acks=all). A broker outage delays events, never loses them,
and the event id inside each entry is stable across retries so consumers can deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts.envelope import Envelope, Event
from contracts.topics import TOPICS
from stallkit.settings import CommonSettings

log = logging.getLogger(__name__)

RELAY_GROUP = "relay"
CLAIM_IDLE_MS = 30_000


def outbox_fields(event: Event, envelope: Envelope[Any]) -> dict[str, str]:
    """The stream entry for one event: where it goes and its serialized envelope."""
    return {
        "topic": event.topic,
        "key": event.market_id,
        "event_id": envelope.id,
        "type": envelope.type,
        "value": envelope.model_dump_json(),
    }


def outbox_argv(event: Event, envelope: Envelope[Any]) -> list[str]:
    """The same entry flattened for a Lua script's ``XADD``."""
    flat: list[str] = []
    for k, v in outbox_fields(event, envelope).items():
        flat += [k, v]
    return flat


class OutboxRelay:
    """Moves outbox entries from a Redis stream to Kafka; run one per service replica."""

    def __init__(
        self,
        redis: Redis,
        settings: CommonSettings,
        stream_key: str,
        *,
        consumer_name: str,
        registry: CollectorRegistry | None = None,
        batch: int = 200,
    ):
        self.redis = redis
        self.settings = settings
        self.stream_key = stream_key
        self.consumer_name = consumer_name
        self.batch = batch
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.published = Counter(
            "outbox_published_total", "Events relayed from the outbox", registry=registry
        )
        self.backlog = Gauge("outbox_backlog", "Entries waiting in the outbox", registry=registry)

    async def _ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: exists already
            await self.redis.xgroup_create(self.stream_key, RELAY_GROUP, id="0", mkstream=True)

    async def _producer_ready(self) -> AIOKafkaProducer:
        while self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id=f"{self.settings.service_name}-outbox",
                acks="all",
                enable_idempotence=False,
                linger_ms=2,
                request_timeout_ms=5_000,
                retry_backoff_ms=200,
            )
            try:
                await producer.start()
                self._producer = producer
            except Exception as exc:
                log.warning("outbox: kafka not reachable", extra={"error": repr(exc)})
                with contextlib.suppress(Exception):
                    await producer.stop()
                await self._sleep(1.0)
        return self._producer

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise asyncio.CancelledError

    async def _publish(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        producer = await self._producer_ready()
        futures = []
        for _, fields in entries:
            topic = TOPICS[fields[b"topic"].decode()].name
            headers = [
                ("ce_id", fields[b"event_id"]),
                ("ce_type", fields[b"type"]),
                ("content-type", b"application/cloudevents+json"),
            ]
            futures.append(
                await producer.send(
                    self.settings.topic(topic),
                    value=fields[b"value"],
                    key=fields[b"key"],
                    headers=headers,
                )
            )
        await asyncio.gather(*futures)
        ids = [entry_id for entry_id, _ in entries]
        await self.redis.xack(self.stream_key, RELAY_GROUP, *ids)
        await self.redis.xdel(self.stream_key, *ids)
        self.published.inc(len(ids))

    async def _next_batch(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # Entries this consumer read but did not relay, then ones other relays abandoned.
        own = await self.redis.xreadgroup(
            RELAY_GROUP, self.consumer_name, {self.stream_key: "0"}, count=self.batch
        )
        if own and own[0][1]:
            gone = [entry_id for entry_id, fields in own[0][1] if not fields]
            if gone:  # deleted after being read: nothing left to relay
                await self.redis.xack(self.stream_key, RELAY_GROUP, *gone)
            return [entry for entry in own[0][1] if entry[1]]
        claimed = await self.redis.xautoclaim(
            self.stream_key, RELAY_GROUP, self.consumer_name, CLAIM_IDLE_MS, count=self.batch
        )
        if claimed[1]:
            return list(claimed[1])
        fresh = await self.redis.xreadgroup(
            RELAY_GROUP, self.consumer_name, {self.stream_key: ">"}, count=self.batch, block=500
        )
        return list(fresh[0][1]) if fresh else []

    async def run(self) -> None:
        """Relay forever; on any failure wait and retry the same entries (order kept)."""
        pending: list[tuple[bytes, dict[bytes, bytes]]] = []
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await self._ensure_group()
                if not pending:
                    pending = await self._next_batch()
                if pending:
                    await self._publish(pending)
                    pending = []
                self.backlog.set(await self.redis.xlen(self.stream_key))
                delay = 0.2
            except asyncio.CancelledError:
                break
            except Exception as exc:
                log.warning("outbox relay failed, will retry", extra={"error": repr(exc)})
                if self._producer is not None:
                    with contextlib.suppress(Exception):
                        await self._producer.stop()
                    self._producer = None
                try:
                    await self._sleep(delay)
                except asyncio.CancelledError:
                    break
                delay = min(delay * 2, 5.0)

    def start(self) -> None:
        """Run the relay in the background."""
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.stream_key}")

    async def stop(self) -> None:
        """Stop the relay and its producer."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
