"""Transactional outbox on a Redis stream, relayed to Kafka by one replica at a time.

A state change and its event are written in one Redis transaction (or Lua script) that also
XADDs the event to the outbox stream, so stream order is commit order. Every replica runs an
:class:`OutboxRelay`, but only the holder of the stream's lease (a key beside the stream, set
with NX + PX, renewed every second) relays: it reads the stream from its start with XRANGE,
publishes a round to Kafka (acks=all), waits for every ack, then removes exactly the sent
entries in a script that first checks the lease. Events leave in outbox order; a crash between
send and removal re-sends the round (same event ids, which consumers deduplicate), never a gap
or a reorder. A broker outage delays events, never loses them.

Ordering inside a Kafka partition across producer retries: aiokafka 0.14 has no
``max_in_flight`` setting; its sender sends one produce request per broker at a time and puts a
retried batch back at the head of its partition's queue, so retries alone never reorder. But
without idempotence (Tansu has none) a batch older than ``request_timeout_ms`` is failed instead
of retried while later batches of the same partition still go out: a gap that the re-sent round
would turn into a reorder. So each round builds at most one record batch per partition
(``create_batch``/``send_batch``): a partition gets a round's events all together or not at all,
and the next round starts only after the whole round was acknowledged.

Fencing is by time, as Kafka-side fencing would need a transactional producer: a round's
batches are queued only while the lease is known to stay valid for twice the send timeout, the
time within which aiokafka fails or delivers a batch; a lost lease ends the relaying at once.
A replica frozen longer than that mid-round (a paused VM) can still deliver late; that limit is
documented, not handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import weakref
from typing import Any, ClassVar

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import ResponseError

from contracts.envelope import Envelope, Event
from contracts.topics import TOPICS
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings
from stallkit.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: The consumer group earlier versions relayed with; destroyed on taking the lease.
OLD_GROUP = "relay"
LEASE_TTL_MS = 5_000
RENEW_EVERY = 1.0
SEND_TIMEOUT_MS = 1_500
#: Upper bound of one partition's record batch in a round (the broker's default limit is 1 MiB).
MAX_BATCH_BYTES = 512 * 1024

Entry = tuple[bytes, dict[bytes, bytes]]

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: stream, lease. ARGV: owner, then the ids sent. Returns {removed, backlog} or {-1, -1}.
_REMOVE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1, -1} end
local removed = redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return {removed, redis.call('XLEN', KEYS[1])}
"""


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


class RelayMetrics:
    """The relays' metrics, one series per outbox stream; shared by the relays of a registry."""

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, RelayMetrics]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, registry: CollectorRegistry | None):
        labels = ["stream"]
        self.published = Counter(
            "outbox_published_total", "Events relayed from the outbox", labels, registry=registry
        )
        self.backlog = Gauge(
            "outbox_backlog", "Entries waiting in the outbox", labels, registry=registry
        )
        self.lease_held = Gauge(
            "outbox_lease_held",
            "1 while this replica holds the outbox lease and relays, else 0",
            labels,
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry | None) -> RelayMetrics:
        """The metrics registered in ``registry`` (made on first use; unregistered for None)."""
        if registry is None:
            return cls(None)
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry)
        return found


def lease_key(stream_key: str) -> str:
    """The relay lease's key: beside the stream, in the same Redis Cluster hash slot."""
    start = stream_key.find("{")
    if start >= 0 and stream_key.find("}", start + 1) > start + 1:
        return f"{stream_key}:lease"  # the stream's hash tag decides both slots
    if "}" in stream_key:
        raise ValueError(f"give the outbox stream {stream_key!r} a hash tag")
    return f"{{{stream_key}}}:lease"


class OutboxRelay:
    """Moves outbox entries from a Redis stream to Kafka; only the lease holder relays."""

    def __init__(
        self,
        redis: RedisClient,
        settings: CommonSettings,
        stream_key: str,
        *,
        consumer_name: str | None = None,
        registry: CollectorRegistry | None = None,
        batch: int = 200,
        lease_ttl_ms: int = LEASE_TTL_MS,
        renew_every: float = RENEW_EVERY,
        send_timeout_ms: int = SEND_TIMEOUT_MS,
    ):
        if lease_ttl_ms <= 2 * send_timeout_ms + renew_every * 1000:
            raise ValueError("the lease must outlast a renewal period and two send timeouts")
        self.redis = redis
        self.settings = settings
        self.stream_key = stream_key
        self.lease_key = lease_key(stream_key)
        name = consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        #: The lease's value while this relay holds it: who, plus a token unique to this relay.
        self.owner = f"{name}/{secrets.token_hex(8)}"
        self.batch = batch
        self.lease_ttl_ms = lease_ttl_ms
        self.renew_every = renew_every
        self.send_timeout_ms = send_timeout_ms
        self._valid_until = 0.0  # monotonic time the lease surely lasts to
        self._producer: AIOKafkaProducer | None = None
        self._closing: asyncio.Task[None] | None = None
        self._partitioner = DefaultPartitioner()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._renewed = asyncio.Event()
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._remove = redis.register_script(_REMOVE)
        metrics = RelayMetrics.of(registry)
        self.published = metrics.published.labels(stream_key)
        self.backlog = metrics.backlog.labels(stream_key)
        self.lease_held = metrics.lease_held.labels(stream_key)
        self.holding = False

    # -- the lease ------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        began = time.monotonic()
        if await self.redis.set(self.lease_key, self.owner, nx=True, px=self.lease_ttl_ms):
            self._valid_until = began + self.lease_ttl_ms / 1000
            return True
        return False

    async def _keep_lease(self) -> None:
        """Renew until the lease is lost or can no longer be confirmed in time; then return."""
        while True:
            await asyncio.sleep(self.renew_every)
            began = time.monotonic()
            try:
                renewed = await asyncio.wait_for(
                    self._renew(keys=[self.lease_key], args=[self.owner, self.lease_ttl_ms]),
                    self.renew_every,
                )
            except Exception as exc:
                if time.monotonic() >= self._valid_until:
                    log.warning("outbox: lease expired unconfirmed", extra={"error": repr(exc)})
                    return
                log.warning("outbox: lease renewal failed", extra={"error": repr(exc)})
                continue
            if not renewed:
                log.warning("outbox: lease lost", extra={"stream": self.stream_key})
                return
            self._valid_until = began + self.lease_ttl_ms / 1000
            self._renewed.set()

    async def _send_window(self) -> None:
        """Wait until the lease surely outlasts a round (two send timeouts)."""
        while True:
            self._renewed.clear()
            if self._valid_until - time.monotonic() >= 2 * self.send_timeout_ms / 1000:
                return
            await self._renewed.wait()  # renewal is late; ``_keep_lease`` ends if it never comes

    # -- Kafka ----------------------------------------------------------------------------

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id=f"{self.settings.service_name}-outbox",
                acks="all",
                enable_idempotence=False,  # Tansu has no idempotent producers
                request_timeout_ms=self.send_timeout_ms,
                retry_backoff_ms=100,
                max_batch_size=MAX_BATCH_BYTES,
            )
            try:
                await self._producer.start()
            except BaseException:
                await self._close_producer()
                raise
        return self._producer

    async def _close_producer(self) -> None:
        """Stop the producer; its ``stop()`` flushes at most one round, bounded by the timeout."""
        producer, self._producer = self._producer, None
        if producer is not None:
            self._closing = asyncio.create_task(producer.stop())
        if self._closing is not None:
            # Shielded: aiokafka's stop() awaits a task that swallows cancellation, which
            # would otherwise swallow a cancellation of ours; here it is raised, and the
            # flush goes on (``stop()`` of the relay waits for it).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._closing)

    async def _publish(self, entries: list[Entry]) -> list[bytes]:
        """Send a prefix of ``entries`` as one batch per partition; return the ids acknowledged."""
        producer = await self._producer_ready()
        batches: dict[tuple[str, int], Any] = {}
        partitions: dict[str, list[int]] = {}
        sent: list[bytes] = []
        for entry_id, fields in entries:
            topic = self.settings.topic(TOPICS[fields[b"topic"].decode()].name)
            key = fields[b"key"]
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            # The partition ``send`` would choose: murmur2 of the key, as Java clients do.
            partition = self._partitioner(key, partitions[topic], partitions[topic])
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[(topic, partition)] = producer.create_batch()
            headers = [
                ("ce_id", fields[b"event_id"]),
                ("ce_type", fields[b"type"]),
                ("content-type", b"application/cloudevents+json"),
            ]
            if (
                batch.append(key=key, value=fields[b"value"], timestamp=None, headers=headers)
                is None
            ):
                break  # this partition's batch is full: the round ends before this entry
            sent.append(entry_id)
        # Checked here, after the producer start and metadata waits: from now on every batch
        # is delivered or failed within two send timeouts, which the lease surely outlasts.
        await self._send_window()
        futures = []
        for (topic, partition), batch in batches.items():
            if batch.record_count():
                batch.close()  # no linger: send now
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), 2 * self.send_timeout_ms / 1000 + 1
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sent

    # -- relaying -------------------------------------------------------------------------

    async def _relay(self) -> None:
        """Relay rounds in stream order while the lease holds; return when it is lost."""
        delay = 0.2
        while True:
            try:
                entries: list[Entry] = await self.redis.xrange(
                    self.stream_key, "-", "+", count=self.batch
                )
                if not entries:
                    self.backlog.set(0)
                    await self.redis.xread({self.stream_key: "0-0"}, count=1, block=500)
                    continue
                sent = await self._publish(entries)
                removed, backlog = await self._remove(
                    keys=[self.stream_key, self.lease_key], args=[self.owner, *sent]
                )
                if removed < 0:
                    log.warning("outbox: lease lost before removal", extra={"sent": len(sent)})
                    return
                self.published.inc(len(sent))
                self.backlog.set(backlog)
                delay = 0.2
            except Exception as exc:
                log.warning("outbox relay failed, will retry", extra={"error": repr(exc)})
                await self._close_producer()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _drop_old_group(self) -> None:
        # Its pending entries are plain stream entries: XRANGE relays them like the others.
        with contextlib.suppress(ResponseError):  # no stream yet
            if await self.redis.xgroup_destroy(self.stream_key, OLD_GROUP):
                log.info("outbox: dropped the old consumer group", extra={"group": OLD_GROUP})

    async def _lead(self) -> None:
        """Relay while holding the lease; return once it is lost."""
        self.holding = True
        self.lease_held.set(1)
        log.info("outbox: lease taken, relaying", extra={"owner": self.owner})
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self._drop_old_group()
            tasks = [
                asyncio.create_task(self._keep_lease()),
                asyncio.create_task(self._relay()),
                asyncio.create_task(self._stopping.wait()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            self.holding = False
            self.lease_held.set(0)
            await cancel_and_wait(*tasks)  # ``done`` above re-raised what mattered
            await self._close_producer()

    async def run(self) -> None:
        """Relay forever: hold the lease and relay, or wait and retry taking it."""
        delay = 0.2
        while not self._stopping.is_set():
            try:
                if await self._acquire():
                    if self._stopping.is_set():  # stop() came while we were taking it
                        break
                    await self._lead()
                else:
                    self.backlog.set(await self.redis.xlen(self.stream_key))
                    await asyncio.sleep(self.renew_every)
                delay = 0.2
            except asyncio.CancelledError:
                break
            except Exception as exc:
                log.warning("outbox relay failed, will retry", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def start(self) -> None:
        """Run the relay in the background."""
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.stream_key}")

    async def stop(self) -> None:
        """Stop relaying and hand the lease over at once."""
        self._stopping.set()
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._close_producer()  # before the release: no round may outlive the lease
        with contextlib.suppress(Exception):
            await self._release(keys=[self.lease_key], args=[self.owner])
