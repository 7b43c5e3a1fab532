"""Consumers against a real broker and a real redis-server: outages delay events, lose none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.envelope import Envelope, RawEnvelope
from contracts.events import StallReleased
from contracts.topics import BOOKINGS, DLQ_CONSUMER_HEADER, DLQ_SOURCE_TOPIC_HEADER
from stallctl import procs
from stallctl.dlq import read_dead_letters
from stallkit.messaging import (
    HANDLER_ATTEMPTS,
    UnprocessableEvent,
    consumer_health,
    ensure_topics,
    envelope_headers,
    make_broker,
    publish_event,
    subscribe_events,
)
from stallkit.service import ServiceParts, build_service, make_redis
from stallkit.settings import CommonSettings
from stalltest.plugin import Isolation

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
CONSUMER = "ledger-svc/ledger"
OUTAGE_SECONDS = 10.0


class OwnRedis:
    """A redis-server of one test, persisted append-only, that the test can kill and restart."""

    def __init__(self, data_dir: Path):
        self.port = procs.free_port()
        self.data_dir = data_dir
        self.proc: Any = None

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again, on the same port and data).

        Every write is fsynced (``appendfsync always``): with ``everysec`` a SIGKILL right after a
        write may lose it (Redis postpones the write while a slow fsync runs, seen on a loaded CI
        machine), and the test is about the consumer, not about Redis's durability window.
        """
        args = [
            *procs.redis_args(self.port, self.data_dir, persistent=True),
            "--appendfsync",
            "always",
        ]
        self.proc = procs.spawn(args, log_path=self.data_dir / "redis.log")
        procs.wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server for this test only (the session's shared one is never stopped)."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    procs.stop(server.proc)


@pytest.fixture
async def settings(isolation: Isolation, own_redis: OwnRedis) -> CommonSettings:
    """This test's topics on the session broker; its own Redis."""
    env = {k.lower(): v for k, v in isolation.env().items()}
    result = CommonSettings.model_validate(
        {**env, "redis_url": own_redis.url, "service_name": "ledger-svc"}
    )
    await ensure_topics(result.kafka_bootstrap_servers, result.topic_prefix)
    return result


def release(stall: str, market: str = "XZ-01") -> StallReleased:
    """An event for the ledger."""
    return StallReleased(
        market_id=market, stall_id=stall, date=date(2026, 12, 7), window_id="evening", cause="x"
    )


def subscribe_ledger(broker: KafkaBroker, settings: CommonSettings, redis: Redis) -> None:
    """A consumer that appends each applied event id to a Redis list (not idempotent)."""

    async def apply(event: StallReleased, envelope: RawEnvelope) -> None:
        if event.stall_id.endswith("C404"):
            raise UnprocessableEvent(f"stall {event.stall_id} was never in the catalogue")
        if event.stall_id.endswith("C500"):
            await redis.incr(settings.key("bug-attempts"))
            raise ZeroDivisionError("a bug")
        await redis.rpush(settings.key("applied"), envelope.id)

    subscribe_events(
        broker,
        settings,
        redis,
        topics=["bookings"],
        group_id="ledger",
        handlers={StallReleased: apply},
    )


async def applied(settings: CommonSettings) -> list[str]:
    """The event ids applied so far, in order (a fresh connection each time)."""
    client = Redis.from_url(settings.redis_url)
    try:
        return [i.decode() for i in await client.lrange(settings.key("applied"), 0, -1)]
    finally:
        await client.aclose()


async def test_a_redis_outage_delays_events_and_loses_none(
    settings: CommonSettings,
    own_redis: OwnRedis,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
) -> None:
    parts = ServiceParts.from_settings(settings)
    subscribe_ledger(parts.broker, settings, parts.redis)
    client = await serve(
        build_service(parts, title="ledger", description="t", configure_logs=False)
    )
    markets = ["XZ-01", "XZ-02", "HQ-01", "JW-03"]  # several partitions
    before = [f"before-{m}" for m in markets]
    for market, event_id in zip(markets, before, strict=True):
        await publish_event(
            publisher, settings, release("C1", market), time=datetime.now(UTC), event_id=event_id
        )

    async def all_applied(ids: list[str]) -> bool:
        return len(await applied(settings)) >= len(ids)

    await eventually(lambda: all_applied(before))
    loop = asyncio.get_running_loop()
    own_redis.kill()
    killed_at = loop.time()

    during = [f"during-{i}-{markets[i % 4]}" for i in range(16)]

    async def publish_during_outage() -> None:
        for i, event_id in enumerate(during):
            event = release(f"C{i}", markets[i % 4])
            await publish_event(
                publisher, settings, event, time=datetime.now(UTC), event_id=event_id
            )
            await asyncio.sleep(0.4)

    publishing = asyncio.create_task(publish_during_outage())

    async def stuck() -> dict[str, Any] | None:
        response = await client.get("/readyz")
        body: dict[str, Any] = response.json()
        if response.status_code == 503 and body["checks"].get("consumers") is False:
            return body
        return None

    body = await eventually(stuck)
    assert list(body["stuck_consumers"]) == [CONSUMER]
    assert "ConnectionError" in body["stuck_consumers"][CONSUMER]["error"]
    await publishing
    await asyncio.sleep(max(0.0, killed_at + OUTAGE_SECONDS - loop.time()))
    assert (await client.get("/readyz")).json()["checks"]["consumers"] is False  # still waiting
    own_redis.start()

    await eventually(lambda: all_applied(before + during), timeout=60)

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await eventually(ready)
    ids = await applied(settings)
    assert sorted(ids) == sorted(before + during)  # every event, each exactly once
    assert await read_dead_letters(settings) == []


async def test_a_consumer_stopped_while_redis_is_down_leaves_the_event_to_the_next_one(
    settings: CommonSettings,
    own_redis: OwnRedis,
    publisher: KafkaBroker,
    eventually: Eventually,
) -> None:
    async def start_consumer() -> tuple[KafkaBroker, Redis]:
        broker, redis = make_broker(settings), make_redis(settings)
        subscribe_ledger(broker, settings, redis)
        await broker.start()
        return broker, redis

    broker, redis = await start_consumer()
    now = datetime.now(UTC)
    await publish_event(publisher, settings, release("C1"), time=now, event_id="first")
    await eventually(lambda: _equals(applied(settings), ["first"]))
    own_redis.kill()
    await publish_event(publisher, settings, release("C2"), time=now, event_id="second")

    async def is_stuck() -> bool:
        return CONSUMER in consumer_health(broker).stuck()

    await eventually(is_stuck)
    await broker.stop()  # a shutdown while the event waits for Redis
    await redis.aclose()
    own_redis.start()

    broker, redis = await start_consumer()
    try:
        await eventually(lambda: _equals(applied(settings), ["first", "second"]), timeout=60)
    finally:
        await broker.stop()
        await redis.aclose()


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    result: bool = await value == expected
    return result


async def test_what_can_never_be_processed_is_dead_lettered_with_its_reason_and_the_rest_goes_on(
    settings: CommonSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    broker, redis = make_broker(settings), make_redis(settings)
    subscribe_ledger(broker, settings, redis)
    await broker.start()
    try:
        topic = settings.topic(BOOKINGS.name)
        now = datetime.now(UTC)
        await publisher.publish(b"not json", topic=topic, key=b"XZ-01")
        bad = Envelope.wrap(release("C2"), source="/test", time=now, event_id="no-stall")
        body = json.loads(bad.model_dump_json())
        del body["data"]["stall_id"]
        await publisher.publish(
            json.dumps(body).encode(), topic=topic, key=b"XZ-01", headers=envelope_headers(bad)
        )
        await publish_event(publisher, settings, release("C404"), time=now, event_id="unknown")
        await publish_event(publisher, settings, release("C500"), time=now, event_id="buggy")
        await publish_event(publisher, settings, release("C1"), time=now, event_id="good")

        await eventually(lambda: _equals(applied(settings), ["good"]), timeout=60)
    finally:
        await broker.stop()
        await redis.aclose()

    dead = await read_dead_letters(settings)
    reasons = [d.reason for d in dead]
    assert len(dead) == 4, reasons
    assert reasons[0].startswith("bad envelope")
    assert reasons[1].startswith(f"bad {StallReleased.event_type()}")
    assert "stall_id" in reasons[1]
    assert reasons[2].startswith("unprocessable ")
    assert "was never in the catalogue" in reasons[2]
    assert reasons[3] == f"handler failed {HANDLER_ATTEMPTS} times: ZeroDivisionError: a bug"
    assert [d.event[0] for d in dead] == [None, "no-stall", "unknown", "buggy"]
    assert {d.key for d in dead} == {b"XZ-01"}
    assert {d.header(DLQ_SOURCE_TOPIC_HEADER) for d in dead} == {topic}
    assert {d.header(DLQ_CONSUMER_HEADER) for d in dead} == {CONSUMER}
    assert dead[2].header("ce_id") == "unknown"  # the original headers travel along
    check = Redis.from_url(settings.redis_url)
    try:
        assert int(await check.get(settings.key("bug-attempts"))) == HANDLER_ATTEMPTS
    finally:
        await check.aclose()


def subscribe_slow_ledger(
    broker: KafkaBroker, settings: CommonSettings, redis: Redis, in_flight: list[int]
) -> None:
    """A ledger whose handler takes a while: each applied id goes to its market's list."""

    async def apply(event: StallReleased, envelope: RawEnvelope) -> None:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            await asyncio.sleep(0.01)
            await redis.rpush(settings.key("applied", event.market_id), envelope.id)
        finally:
            in_flight[0] -= 1

    subscribe_events(
        broker,
        settings,
        redis,
        topics=["bookings"],
        group_id="ledger",
        handlers={StallReleased: apply},
    )


async def applied_by_market(settings: CommonSettings, markets: list[str]) -> dict[str, list[str]]:
    """Each market's applied event ids, in the order they were applied."""
    client = Redis.from_url(settings.redis_url)
    try:
        return {
            m: [i.decode() for i in await client.lrange(settings.key("applied", m), 0, -1)]
            for m in markets
        }
    finally:
        await client.aclose()


MARKETS = ["XZ-01", "XZ-02", "HQ-01", "JW-03", "DM-01", "JD-02"]


async def publish_backlog(
    publisher: KafkaBroker, settings: CommonSettings, per_market: int
) -> dict[str, list[str]]:
    """``per_market`` events for each market, published before any consumer runs."""
    sent: dict[str, list[str]] = {m: [] for m in MARKETS}
    for n in range(per_market):
        for market in MARKETS:
            event_id = f"{market}-{n:03d}"
            await publish_event(
                publisher,
                settings,
                release(f"C{n:03d}", market),
                time=datetime.now(UTC),
                event_id=event_id,
            )
            sent[market].append(event_id)
    return sent


async def test_a_backlog_is_applied_once_each_market_in_the_order_it_was_published(
    settings: CommonSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    sent = await publish_backlog(publisher, settings, per_market=40)
    in_flight = [0, 0]
    broker, redis = make_broker(settings), make_redis(settings)
    subscribe_slow_ledger(broker, settings, redis, in_flight)
    await broker.start()
    try:
        await eventually(lambda: _equals(applied_by_market(settings, MARKETS), sent), timeout=60)
    finally:
        await broker.stop()
        await redis.aclose()
    # The markets' partitions were worked on side by side, and each market kept its order.
    assert in_flight[1] > 1


async def test_a_consumer_stopped_mid_batch_leaves_the_rest_to_the_next_and_applies_none_twice(
    settings: CommonSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    sent = await publish_backlog(publisher, settings, per_market=40)
    total = sum(len(ids) for ids in sent.values())
    in_flight = [0, 0]

    async def start_consumer() -> tuple[KafkaBroker, Redis]:
        broker, redis = make_broker(settings), make_redis(settings)
        subscribe_slow_ledger(broker, settings, redis, in_flight)
        await broker.start()
        return broker, redis

    async def count_applied() -> int:
        return sum(len(ids) for ids in (await applied_by_market(settings, MARKETS)).values())

    broker, redis = await start_consumer()

    async def some_applied() -> bool:
        return 0 < await count_applied() < total

    await eventually(some_applied, timeout=60)
    await broker.stop()  # in the middle of the backlog, most likely of a batch
    await redis.aclose()
    stopped_at = await count_applied()
    assert stopped_at < total

    broker, redis = await start_consumer()
    try:
        await eventually(lambda: _equals(applied_by_market(settings, MARKETS), sent), timeout=60)
    finally:
        await broker.stop()
        await redis.aclose()
