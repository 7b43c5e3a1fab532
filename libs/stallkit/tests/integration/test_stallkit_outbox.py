"""The outbox relay against a real redis-server and a real broker: one leased relay, in order."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.crc import key_slot

from contracts.envelope import Envelope
from contracts.events import StallReleased
from contracts.topics import BOOKINGS
from stallctl import procs
from stallkit.outbox import OutboxRelay, lease_key, outbox_fields
from stallkit.settings import CommonSettings
from stalltest.plugin import Isolation, TopicReader

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]


def _entry(i: int, market: str = "XZ-01") -> dict[str, str]:
    event = StallReleased(
        market_id=market,
        stall_id=f"{market}-C{i % 1000:03d}",
        date=date(2026, 12, 7),
        window_id="evening",
        cause="cancelled",
    )
    return outbox_fields(event, Envelope.wrap(event, source="/test", time=datetime.now(UTC)))


def _settings(isolation: Isolation, **overrides: str) -> CommonSettings:
    env = {k.lower(): v for k, v in isolation.env().items()}
    return CommonSettings.model_validate({**env, **overrides})


def _ids(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records]


def _first_seen(ids: list[str]) -> list[str]:
    """The sequence a deduplicating consumer processes: each event id the first time only."""
    return list(dict.fromkeys(ids))


async def _add(redis: Redis, stream: str, entries: list[dict[str, str]]) -> list[str]:
    for fields in entries:
        await redis.xadd(stream, fields)
    return [e["event_id"] for e in entries]


@pytest.fixture
async def relays(redis_client: Redis) -> AsyncIterator[Callable[..., OutboxRelay]]:
    """Factory of started relays (each with its own metrics registry), stopped after the test."""
    started: list[OutboxRelay] = []

    def make(
        settings: CommonSettings,
        stream: str,
        name: str,
        registry: CollectorRegistry | None = None,
    ) -> OutboxRelay:
        relay = OutboxRelay(redis_client, settings, stream, consumer_name=name, registry=registry)
        relay.start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        await relay.stop()


def _metric(registry: CollectorRegistry, name: str) -> float | None:
    """The metric summed over its series (one per outbox stream)."""
    found = [
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]
    return sum(found) if found else None


def test_lease_key_lives_in_the_streams_cluster_slot() -> None:
    for stream in ["alloc:{alloc}:outbox", "t1a2b:alloc:{alloc}:outbox", "t1a2b:outbox"]:
        assert key_slot(lease_key(stream).encode()) == key_slot(stream.encode())
    assert lease_key("alloc:{alloc}:outbox") == "alloc:{alloc}:outbox:lease"


async def test_one_of_two_relays_holds_the_lease_and_relays_in_order(
    isolation: Isolation,
    redis_client: Redis,
    topic_reader: Callable[[str], Any],
    relays: Callable[..., OutboxRelay],
    eventually: Eventually,
) -> None:
    settings = _settings(isolation)
    stream = settings.key("outbox")
    reader = await topic_reader(settings.topic(BOOKINGS.name))
    metrics = {"replica-a": CollectorRegistry(), "replica-b": CollectorRegistry()}
    pair = [relays(settings, stream, name, registry) for name, registry in metrics.items()]

    async def one_holder() -> OutboxRelay | None:
        holders = [r for r in pair if r.holding]
        return holders[0] if len(holders) == 1 else None

    holder = await eventually(one_holder)
    (other,) = [r for r in pair if r is not holder]
    assert (await redis_client.get(lease_key(stream))).decode() == holder.owner

    expected = await _add(redis_client, stream, [_entry(i) for i in range(1, 61)])
    records = await reader.collect_until(lambda rs: len(rs) >= 60)
    assert _ids(records) == expected
    assert {r.key for r in records} == {b"XZ-01"}
    assert await eventually(lambda: _zero(redis_client.xlen(stream)))
    held, idle = metrics[holder.owner.split("/")[0]], metrics[other.owner.split("/")[0]]
    assert _metric(held, "outbox_lease_held") == 1.0
    assert _metric(idle, "outbox_lease_held") == 0.0
    assert _metric(held, "outbox_published_total") == 60
    assert _metric(idle, "outbox_published_total") == 0
    assert _metric(held, "outbox_backlog") == 0
    assert not other.holding


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0


async def test_order_is_kept_across_a_broker_outage(
    isolation: Isolation,
    redis_client: Redis,
    relays: Callable[..., OutboxRelay],
    eventually: Eventually,
) -> None:
    port = procs.free_port()
    settings = _settings(isolation, kafka_bootstrap_servers=f"127.0.0.1:{port}")
    stream = settings.key("outbox")
    topic = settings.topic(BOOKINGS.name)
    metrics = [CollectorRegistry(), CollectorRegistry()]
    broker = procs.spawn(procs.broker_args(port))
    try:
        procs.wait_for_port(port, proc=broker)
        for i, registry in enumerate(metrics):
            relays(settings, stream, f"replica-{i}", registry)
        reader = TopicReader(f"127.0.0.1:{port}", topic)
        await reader.start()
        try:
            before = await _add(redis_client, stream, [_entry(i) for i in range(1, 11)])
            records = await reader.collect_until(lambda rs: len(rs) >= 10)
            assert _ids(records) == before
        finally:
            await reader.stop()

        # The outage (stopped off the event loop: the relays keep renewing their lease).
        await asyncio.to_thread(procs.stop, broker)
        during: list[str] = []
        for start in range(11, 131, 30):  # events keep being committed, a few at a time
            during += await _add(
                redis_client, stream, [_entry(i) for i in range(start, start + 30)]
            )
            await asyncio.sleep(0.75)  # the outage lasts a while: the holder's rounds fail
        assert await redis_client.xlen(stream) == len(during)

        broker = procs.spawn(procs.broker_args(port))  # back, empty (in-memory broker)
        procs.wait_for_port(port, proc=broker)
        reader = TopicReader(f"127.0.0.1:{port}", topic)
        await reader.start()
        try:
            records = await reader.collect_until(
                lambda rs: len(set(_ids(rs))) >= len(during), timeout=60
            )
        finally:
            await reader.stop()
        assert _first_seen(_ids(records)) == during
        assert await eventually(lambda: _zero(redis_client.xlen(stream)))
        # The outage did not move the lease: one relay published everything.
        published = sorted(_metric(r, "outbox_published_total") for r in metrics)
        assert published == [0, 10 + len(during)]
    finally:
        await asyncio.to_thread(procs.stop, broker)


async def test_a_dead_holders_lease_is_taken_over_once_it_expires(
    isolation: Isolation,
    redis_client: Redis,
    topic_reader: Callable[[str], Any],
    relays: Callable[..., OutboxRelay],
    eventually: Eventually,
) -> None:
    settings = _settings(isolation)
    stream = settings.key("outbox")
    reader = await topic_reader(settings.topic(BOOKINGS.name))
    # What a replica killed while holding the lease leaves behind: a lease nobody renews.
    await redis_client.set(lease_key(stream), "dead-replica/0", px=3_000)
    expected = await _add(redis_client, stream, [_entry(i) for i in range(1, 31)])
    registry = CollectorRegistry()
    relay = relays(settings, stream, "survivor", registry)

    async def standing_by() -> bool:
        return _metric(registry, "outbox_backlog") == 30

    await eventually(standing_by)  # it looked at the outbox, and did not relay
    assert not relay.holding
    assert await redis_client.get(lease_key(stream)) == b"dead-replica/0"
    assert await redis_client.xlen(stream) == 30

    records = await reader.collect_until(lambda rs: len(rs) >= 30)
    assert _ids(records) == expected
    assert relay.holding
    assert (await redis_client.get(lease_key(stream))).decode() == relay.owner


async def test_a_holder_that_loses_its_lease_stops_relaying(
    isolation: Isolation,
    redis_client: Redis,
    topic_reader: Callable[[str], Any],
    relays: Callable[..., OutboxRelay],
    eventually: Eventually,
) -> None:
    settings = _settings(isolation)
    stream = settings.key("outbox")
    reader = await topic_reader(settings.topic(BOOKINGS.name))
    registry = CollectorRegistry()
    relay = relays(settings, stream, "replica-a", registry)
    await eventually(lambda: _true(relay.holding))
    first = await _add(redis_client, stream, [_entry(i) for i in range(1, 6)])
    await reader.collect_until(lambda rs: len(rs) >= 5)

    # Another owner now has the lease (as if this replica had been cut off past its TTL).
    await redis_client.set(lease_key(stream), "usurper/0", px=60_000)
    await eventually(lambda: _true(not relay.holding))
    assert _metric(registry, "outbox_lease_held") == 0.0
    later = await _add(redis_client, stream, [_entry(i) for i in range(6, 11)])

    async def standing_by() -> bool:
        return _metric(registry, "outbox_backlog") == 5

    await eventually(standing_by)
    assert await redis_client.xlen(stream) == 5  # nothing relayed without the lease

    await redis_client.delete(lease_key(stream))  # the usurper is gone: taken back
    records = await reader.collect_until(lambda rs: len(rs) >= 10)
    assert _ids(records) == first + later


async def _true(value: bool) -> bool:
    return value


async def test_entries_left_by_the_old_consumer_group_are_relayed_in_order(
    isolation: Isolation,
    redis_client: Redis,
    topic_reader: Callable[[str], Any],
    relays: Callable[..., OutboxRelay],
    eventually: Eventually,
) -> None:
    settings = _settings(isolation)
    stream = settings.key("outbox")
    reader = await topic_reader(settings.topic(BOOKINGS.name))
    # A stream the previous version relayed with the `relay` group; a replica that died
    # had read the first eight entries and never acknowledged them.
    await redis_client.xgroup_create(stream, "relay", id="0", mkstream=True)
    expected = await _add(redis_client, stream, [_entry(i) for i in range(1, 21)])
    await redis_client.xreadgroup("relay", "old-replica", {stream: ">"}, count=8)
    relays(settings, stream, "new-version")

    records = await reader.collect_until(lambda rs: len(rs) >= 20)
    assert _ids(records) == expected
    assert await redis_client.xinfo_groups(stream) == []
    assert await eventually(lambda: _zero(redis_client.xlen(stream)))


async def test_relay_waits_for_a_broker_that_is_not_there_yet(
    isolation: Isolation, redis_client: Redis, relays: Callable[..., OutboxRelay]
) -> None:
    port = procs.free_port()
    settings = _settings(isolation, kafka_bootstrap_servers=f"127.0.0.1:{port}")
    stream = settings.key("outbox")
    (event_id,) = await _add(redis_client, stream, [_entry(1)])
    relays(settings, stream, "t")
    broker = None
    try:
        assert await redis_client.xlen(stream) == 1  # nothing to send it to yet
        broker = procs.spawn(procs.broker_args(port))
        procs.wait_for_port(port, proc=broker)
        reader = TopicReader(f"127.0.0.1:{port}", settings.topic(BOOKINGS.name))
        await reader.start()
        try:
            records = await reader.collect_until(lambda rs: len(rs) >= 1, timeout=60)
        finally:
            await reader.stop()
        assert _ids(records) == [event_id]
    finally:
        if broker is not None:
            procs.stop(broker)


async def test_a_large_backlog_of_many_markets_leaves_in_order_per_market(
    isolation: Isolation,
    redis_client: Redis,
    topic_reader: Callable[[str], Any],
    relays: Callable[..., OutboxRelay],
    eventually: Eventually,
) -> None:
    settings = _settings(isolation)
    stream = settings.key("outbox")
    reader = await topic_reader(settings.topic(BOOKINGS.name))
    markets = [f"XZ-{m:02d}" for m in range(1, 21)]  # keys spread over the topic's partitions
    entries = [_entry(i, markets[i % len(markets)]) for i in range(5_000)]
    pipe = redis_client.pipeline(transaction=False)
    for fields in entries:
        pipe.xadd(stream, fields)
    await pipe.execute()
    metrics = [CollectorRegistry(), CollectorRegistry()]

    began = time.perf_counter()
    for i, registry in enumerate(metrics):
        relays(settings, stream, f"replica-{i}", registry)
    deadline = began + 60
    while await redis_client.xlen(stream) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)  # polling finely is the measurement
    rate = len(entries) / (time.perf_counter() - began)
    print(f"\nrelay throughput, outbox to Kafka (acks=all), lease taking included: {rate:.0f}/s")

    records = await reader.collect_until(lambda rs: len(rs) >= len(entries), timeout=60)
    expected: dict[str, list[str]] = defaultdict(list)
    for fields in entries:
        expected[fields["key"]].append(fields["event_id"])
    arrived: dict[str, list[str]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in records:
        arrived[record.key.decode()].append(json.loads(record.value)["id"])
        partitions[record.key.decode()].add(record.partition)
    assert arrived == expected  # each market's events in commit order, each once
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1
    published = sorted(_metric(r, "outbox_published_total") for r in metrics)
    assert published == [0, len(entries)]
