"""What a consumer retries, dead-letters and reports, with FastStream's in-memory test broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from contracts.envelope import Envelope, RawEnvelope
from contracts.events import BookingCancelled, StallReleased
from contracts.topics import DLQ_REASON_HEADER, TOPICS
from stallkit import messaging
from stallkit.messaging import (
    HANDLER_ATTEMPTS,
    RETRY_MAX_DELAY,
    ConsumerHealth,
    UnprocessableEvent,
    consumer_health,
    is_infrastructure_failure,
    publish_event,
    retry_delay,
    subscribe_events,
    unversioned,
)
from stallkit.settings import CommonSettings
from stalltest.plugin import FakeRedis, unit_parts

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _chained(outer: Exception, inner: BaseException, *, suppress: bool = False) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            if suppress:
                raise outer from None
            raise outer from exc
    except Exception as raised:
        return raised


@pytest.mark.parametrize(
    ("error", "infrastructure"),
    [
        (RedisConnectionError("refused"), True),
        (BusyLoadingError("loading the dataset"), True),
        (KafkaConnectionError(), True),
        (TimeoutError(), True),
        (OSError("no route"), True),
        (ResponseError("OOM command not allowed"), True),
        (ResponseError("WRONGTYPE Operation against a key"), False),
        (ClusterDownError("The cluster is down"), True),
        (MasterDownError("Link with MASTER is down"), True),
        (TryAgainError("Multiple keys request during rehashing of slot"), True),
        (SlotNotCoveredError("Slot 1 is not covered by the cluster."), True),
        (ResponseError("CROSSSLOT Keys in request don't hash to the same slot"), False),
        (ValueError("bad data"), False),
        (KeyError("missing"), False),
        (_chained(RuntimeError("store failed"), RedisConnectionError("refused")), True),
        (_chained(RuntimeError("bug"), RedisConnectionError(), suppress=True), False),
    ],
)
def test_infrastructure_failures_are_told_from_bugs(error: Exception, infrastructure: bool) -> None:
    assert is_infrastructure_failure(error) is infrastructure


def test_retry_delay_doubles_and_is_capped() -> None:
    assert 0.4 <= retry_delay(1) <= 0.5
    assert 0.8 <= retry_delay(2) <= 1.0
    assert all(0.8 * RETRY_MAX_DELAY <= retry_delay(n) <= RETRY_MAX_DELAY for n in (10, 40, 500))


def test_consumer_health_names_the_stuck_consumer_until_it_recovers() -> None:
    health = ConsumerHealth()
    assert health.stuck() == {}
    health.failed("reporting/reporting", RedisConnectionError("refused"))
    health.failed("reporting/reporting", RedisConnectionError("still refused"))
    stuck = health.stuck()
    assert list(stuck) == ["reporting/reporting"]
    assert stuck["reporting/reporting"]["attempts"] == 2
    assert "still refused" in stuck["reporting/reporting"]["error"]
    health.recovered("reporting/reporting")
    assert health.stuck() == {}


class FlakyRedis(FakeRedis):
    """The fake Redis, whose named calls fail with a connection error a given number of times."""

    def __init__(self, **failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _maybe_fail(self, call: str) -> None:
        if self.failures.get(call, 0) > 0:
            self.failures[call] -= 1
            raise RedisConnectionError(f"{call}: connection refused")

    async def exists(self, *keys: str) -> int:
        self._maybe_fail("exists")
        return await super().exists(*keys)

    async def set(self, key: str, value: Any, ex: int | None = None) -> bool:
        self._maybe_fail("set")
        return await super().set(key, value, ex=ex)


@dataclass
class Consumer:
    broker: KafkaBroker
    settings: CommonSettings
    redis: FlakyRedis
    dead_letters: list[KafkaMessage]
    applied: list[str] = field(default_factory=list)
    health_seen: list[dict[str, Any]] = field(default_factory=list)
    behaviour: dict[str, BaseException] = field(default_factory=dict)

    async def publish(self, stall: str, event_id: str) -> None:
        event = StallReleased(
            market_id="XZ-01",
            stall_id=stall,
            date=date(2026, 12, 7),
            window_id="evening",
            cause="cancelled",
        )
        await publish_event(self.broker, self.settings, event, time=NOW, event_id=event_id)


@pytest.fixture
async def consumer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(messaging, "RETRY_FIRST_DELAY", 0.001)
    redis = FlakyRedis(**getattr(request, "param", {}))
    settings = CommonSettings(service_name="unit")
    parts, dead_letters = unit_parts(settings, redis)
    state = Consumer(parts.broker, settings, redis, dead_letters)

    async def apply(event: StallReleased, envelope: RawEnvelope) -> None:
        state.health_seen.append(consumer_health(parts.broker).stuck())
        if failure := state.behaviour.get(event.stall_id):
            raise failure
        state.applied.append(envelope.id)

    subscribe_events(
        parts.broker,
        settings,
        redis,
        topics=["bookings"],
        group_id="ledger",
        handlers={StallReleased: apply},
    )

    async def started() -> AsyncIterator[Consumer]:
        async with TestKafkaBroker(parts.broker):
            yield state

    async for running in started():
        yield running


@pytest.mark.parametrize("consumer", [{"exists": 3}], indirect=True)
async def test_a_failing_dedup_check_is_retried_not_acknowledged(consumer: Consumer) -> None:
    await consumer.publish("XZ-01-C001", "evt-1")
    assert consumer.applied == ["evt-1"]
    assert consumer.redis.failures["exists"] == 0  # it took four checks
    assert consumer_health(consumer.broker).stuck() == {}
    assert consumer.dead_letters == []
    assert "processed:ledger:evt-1" in consumer.redis.values


@pytest.mark.parametrize("consumer", [{"set": 2}], indirect=True)
async def test_the_dedup_mark_is_written_after_the_handler_and_it_runs_once(
    consumer: Consumer,
) -> None:
    await consumer.publish("XZ-01-C001", "evt-1")
    assert consumer.applied == ["evt-1"]  # the handler is not run again for a failed mark
    assert "processed:ledger:evt-1" in consumer.redis.values
    await consumer.publish("XZ-01-C001", "evt-1")  # redelivered: skipped
    assert consumer.applied == ["evt-1"]


async def test_a_handler_that_fails_on_redis_makes_the_consumer_stuck_until_it_passes(
    consumer: Consumer,
) -> None:
    failures = iter([RedisConnectionError("refused"), RedisConnectionError("refused again")])

    class FailTwice(dict[str, BaseException]):
        def get(self, key: str, default: Any = None) -> Any:
            return next(failures, None)

    consumer.behaviour = FailTwice()
    await consumer.publish("XZ-01-C001", "evt-1")
    assert consumer.applied == ["evt-1"]
    # Each retry saw the consumer stuck, with the last error; after success it recovered.
    assert consumer.health_seen[0] == {}
    assert "ConnectionError: refused" in consumer.health_seen[1]["unit/ledger"]["error"]
    assert consumer.health_seen[2]["unit/ledger"]["attempts"] == 2
    assert consumer_health(consumer.broker).stuck() == {}
    assert consumer.dead_letters == []


async def test_an_unprocessable_event_is_dead_lettered_at_once(consumer: Consumer) -> None:
    consumer.behaviour["XZ-01-C404"] = UnprocessableEvent("stall XZ-01-C404 does not exist")
    await consumer.publish("XZ-01-C404", "evt-404")
    await consumer.publish("XZ-01-C001", "evt-ok")
    assert consumer.applied == ["evt-ok"]
    assert len(consumer.health_seen) == 2  # one try only
    [dead] = consumer.dead_letters
    assert dead.headers[DLQ_REASON_HEADER].startswith("unprocessable ")
    assert "XZ-01-C404 does not exist" in dead.headers[DLQ_REASON_HEADER]
    assert dead.headers["ce_id"] == "evt-404"  # the original headers travel along
    assert "processed:ledger:evt-404" not in consumer.redis.values


async def test_a_handler_bug_is_retried_a_few_times_then_dead_lettered(consumer: Consumer) -> None:
    consumer.behaviour["XZ-01-C500"] = ZeroDivisionError("division by zero")
    await consumer.publish("XZ-01-C500", "evt-bug")
    await consumer.publish("XZ-01-C001", "evt-ok")
    assert consumer.applied == ["evt-ok"]
    assert len(consumer.health_seen) == HANDLER_ATTEMPTS + 1
    assert all(seen == {} for seen in consumer.health_seen)  # a bug is not an outage
    [dead] = consumer.dead_letters
    assert dead.headers[DLQ_REASON_HEADER].startswith(f"handler failed {HANDLER_ATTEMPTS} times")


async def test_an_unknown_version_of_an_event_read_is_dead_lettered_other_types_skipped(
    consumer: Consumer,
) -> None:
    envelope = Envelope.wrap(
        StallReleased(market_id="XZ-01", stall_id="XZ-01-C001", date=date(2026, 12, 7),
                      window_id="evening", cause="cancelled"),
        source="/tests", time=NOW, event_id="evt-v99",
    )  # fmt: skip
    body = json.loads(envelope.model_dump_json())
    topic = consumer.settings.topic(TOPICS["bookings"].name)
    for event_id, event_type in [
        ("evt-v99", StallReleased.event_type().removesuffix(".v1") + ".v99"),
        ("evt-other", BookingCancelled.event_type()),  # read by other consumers: skipped
        ("evt-unknown", "cn.gov.zhuhai.markets.booking.teleported.v1"),  # read by nobody
    ]:
        raw = {**body, "id": event_id, "type": event_type}
        await consumer.broker.publish(json.dumps(raw).encode(), topic=topic, key=b"XZ-01")
    await consumer.publish("XZ-01-C001", "evt-ok")
    assert consumer.applied == ["evt-ok"]
    [dead] = consumer.dead_letters
    reason = dead.headers[DLQ_REASON_HEADER]
    assert reason == (
        f"unknown version {StallReleased.event_type().removesuffix('.v1')}.v99: "
        f"reads {StallReleased.event_type()}"
    )
    assert json.loads(dead.body)["id"] == "evt-v99"


def test_unversioned_strips_only_a_version_suffix() -> None:
    assert unversioned("cn.gov.zhuhai.markets.booking.created.v12") == (
        "cn.gov.zhuhai.markets.booking.created"
    )
    assert unversioned("cn.gov.zhuhai.markets.booking.created") == (
        "cn.gov.zhuhai.markets.booking.created"
    )
    assert unversioned("a.vendor.changed.vx") == "a.vendor.changed.vx"


@dataclass
class _Record:
    topic: str
    partition: int
    value: bytes
    key: bytes = b"XZ-01"
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class _Batch:
    raw_message: tuple[_Record, ...]
    acked: bool = False

    async def ack(self) -> None:
        self.acked = True

    async def nack(self) -> None:
        raise AssertionError("not stopping")


async def test_a_consumer_is_stuck_while_any_partition_of_its_batch_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two partitions side by side: one applies at once, the other waits for Redis. The
    consumer is reported stuck until the waiting one is through, then committed once."""
    monkeypatch.setattr(messaging, "RETRY_FIRST_DELAY", 0.05)
    settings = CommonSettings(service_name="unit")
    broker = KafkaBroker()
    seen: list[dict[str, Any]] = []
    failures = {"XZ-01-C002": 3}

    async def apply(event: StallReleased, envelope: RawEnvelope) -> None:
        if event.stall_id == "XZ-01-C003":
            await asyncio.sleep(0.02)  # the other partition has failed by now
        seen.append(consumer_health(broker).stuck())
        if failures.get(event.stall_id, 0) > 0:
            failures[event.stall_id] -= 1
            raise RedisConnectionError("refused")

    consumer = messaging._EventConsumer(
        broker, settings, FakeRedis(), group_id="ledger", handlers={StallReleased: apply},
        dedupe=False,
    )  # fmt: skip

    def record(partition: int, stall: str) -> _Record:
        event = StallReleased(
            market_id="XZ-01", stall_id=stall, date=date(2026, 12, 7), window_id="evening",
            cause="cancelled",
        )  # fmt: skip
        body = Envelope.wrap(event, source="/test", time=NOW).model_dump_json().encode()
        return _Record("bookings", partition, body)

    # The first partition's second event comes after the other partition started waiting.
    batch = _Batch((record(0, "XZ-01-C001"), record(0, "XZ-01-C003"), record(1, "XZ-01-C002")))
    await consumer.handle(batch)  # type: ignore[arg-type]
    assert batch.acked
    # C001, C002's first try, C003 (while C002 waits), then C002's retries: stuck throughout,
    # though C003 went through on the other partition meanwhile
    assert [list(s) for s in seen] == [[], [], *[["unit/ledger"]] * 4]
    assert consumer_health(broker).stuck() == {}  # all through


def _released(partition: int, stall: str, event_id: str) -> _Record:
    event = StallReleased(
        market_id="XZ-01", stall_id=stall, date=date(2026, 12, 7), window_id="evening",
        cause="cancelled",
    )  # fmt: skip
    body = Envelope.wrap(event, source="/test", time=NOW, event_id=event_id)
    return _Record("bookings", partition, body.model_dump_json().encode())


async def test_a_batch_handler_takes_each_partitions_events_together_and_falls_back_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(messaging, "RETRY_FIRST_DELAY", 0.001)
    settings = CommonSettings(service_name="unit")
    parts, dead_letters = unit_parts(settings, FakeRedis())
    together: list[list[str]] = []
    one_by_one: list[str] = []
    outage = {"e1": 1}  # the first call with e1 meets a Redis outage

    async def apply_all(items: Any) -> None:
        ids = [envelope.id for _, envelope in items]
        together.append(ids)
        if outage.get(ids[0], 0) > 0:
            outage[ids[0]] -= 1
            raise RedisConnectionError("refused")
        if any(event.stall_id == "XZ-01-C404" for event, _ in items):
            raise ZeroDivisionError("a bug somewhere in the batch")

    async def apply(event: StallReleased, envelope: RawEnvelope) -> None:
        if event.stall_id == "XZ-01-C404":
            raise UnprocessableEvent("stall XZ-01-C404 does not exist")
        one_by_one.append(envelope.id)

    consumer = messaging._EventConsumer(
        parts.broker, settings, FakeRedis(), group_id="ledger", handlers={StallReleased: apply},
        dedupe=False, batch_handler=apply_all,
    )  # fmt: skip
    async with TestKafkaBroker(parts.broker):
        first = _Batch(
            (_released(0, "XZ-01-C001", "e1"), _Record("bookings", 0, b"not an envelope"),
             _released(0, "XZ-01-C002", "e2"), _released(1, "XZ-01-C003", "e3"))
        )  # fmt: skip
        await consumer.handle(first)  # type: ignore[arg-type]
        assert first.acked
        # Each partition in one call, in order; the outage waited out and the call made again.
        assert sorted(together) == [["e1", "e2"], ["e1", "e2"], ["e3"]]
        assert one_by_one == []
        [bad] = dead_letters
        assert bad.headers[DLQ_REASON_HEADER].startswith("bad envelope")
        assert consumer_health(parts.broker).stuck() == {}

        together.clear()
        second = _Batch((_released(0, "XZ-01-C404", "e4"), _released(0, "XZ-01-C005", "e5")))
        await consumer.handle(second)  # type: ignore[arg-type]
        assert second.acked
        # The batch call failed on a bug: each event went its own way, the bad one alone.
        assert together == [["e4", "e5"]]
        assert one_by_one == ["e5"]
        assert json.loads(dead_letters[-1].body)["id"] == "e4"
        assert dead_letters[-1].headers[DLQ_REASON_HEADER].startswith("unprocessable ")


def test_a_batch_handler_is_not_for_a_consumer_that_marks_what_it_processed() -> None:
    settings = CommonSettings(service_name="unit")

    async def apply_all(items: Any) -> None:
        """Never called."""

    with pytest.raises(ValueError, match="no dedup marks"):
        subscribe_events(
            KafkaBroker(), settings, FakeRedis(), topics=["bookings"], group_id="ledger",
            handlers={}, batch_handler=apply_all,
        )  # fmt: skip
