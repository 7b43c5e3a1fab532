"""``stallctl dlq list|replay`` against the real broker, with a real consumer dead-lettering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from typer.testing import CliRunner, Result

from contracts.envelope import RawEnvelope
from contracts.events import StallReleased
from contracts.topics import BOOKINGS, DEAD_LETTER, DLQ_REASON_HEADER
from stallctl.cli import app
from stallkit.messaging import (
    UnprocessableEvent,
    ensure_topics,
    make_broker,
    publish_event,
    subscribe_events,
)
from stallkit.service import make_redis
from stallkit.settings import CommonSettings
from stalltest.plugin import Isolation, TopicReader

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
CONSUMER = "ledger-svc/ledger"


@dataclass
class Ledger:
    """A running consumer that cannot apply stall releases until it is ``fixed``."""

    settings: CommonSettings
    fixed: bool = False
    applied: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
async def settings(isolation: Isolation) -> CommonSettings:
    """This test's topics and keys on the session's broker and Redis."""
    env = {k.lower(): v for k, v in isolation.env().items()}
    result = CommonSettings.model_validate({**env, "service_name": "ledger-svc"})
    await ensure_topics(result.kafka_bootstrap_servers, result.topic_prefix)
    return result


@pytest.fixture
async def ledger(settings: CommonSettings) -> AsyncIterator[Ledger]:
    """The consumer, started."""
    state = Ledger(settings)
    broker, redis = make_broker(settings), make_redis(settings)

    async def apply(event: StallReleased, envelope: RawEnvelope) -> None:
        if not state.fixed:
            raise UnprocessableEvent(f"stall {event.stall_id} unknown")
        state.applied.append((envelope.id, event.market_id))

    subscribe_events(
        broker,
        settings,
        redis,
        topics=["bookings"],
        group_id="ledger",
        handlers={StallReleased: apply},
    )
    await broker.start()
    yield state
    await broker.stop()
    await redis.aclose()


async def stallctl(isolation: Isolation, *args: str) -> Result:
    """Run ``stallctl`` with this test's environment (in a thread: it runs its own loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), env=isolation.env())


async def test_dead_letters_are_listed_with_their_reason_and_replayed_to_their_topic(
    isolation: Isolation,
    settings: CommonSettings,
    ledger: Ledger,
    publisher: KafkaBroker,
    eventually: Eventually,
) -> None:
    empty = await stallctl(isolation, "dlq", "list")
    assert empty.exit_code == 0, empty.output
    assert f"dead letters in {settings.topic(DEAD_LETTER.name)}: 0" in empty.output

    topic = settings.topic(BOOKINGS.name)
    await publisher.publish(b"not json", topic=topic, key=b"XZ-07")
    event = StallReleased(
        market_id="XZ-07",
        stall_id="XZ-07-C009",
        date=date(2026, 12, 7),
        window_id="evening",
        cause="cancelled",
    )
    await publish_event(publisher, settings, event, time=datetime.now(UTC), event_id="evt-9")

    async def dead_letters() -> list[dict[str, Any]] | None:
        result = await stallctl(isolation, "dlq", "list", "--json")
        assert result.exit_code == 0, result.output
        entries: list[dict[str, Any]] = json.loads(result.stdout)
        return entries if len(entries) >= 2 else None

    bad, unknown = await eventually(dead_letters)
    assert (bad["offset"], unknown["offset"]) == (0, 1)
    assert bad["reason"].startswith("bad envelope")
    assert (bad["event_id"], bad["body"]) == (None, "not json")
    assert (
        unknown["reason"] == f"unprocessable {StallReleased.event_type()}: stall XZ-07-C009 unknown"
    )
    assert (unknown["event_id"], unknown["event_type"]) == ("evt-9", StallReleased.event_type())
    assert (unknown["source_topic"], unknown["consumer"], unknown["key"]) == (
        topic,
        CONSUMER,
        "XZ-07",
    )
    assert unknown["headers"]["ce_id"] == "evt-9"

    text = await stallctl(isolation, "dlq", "list")
    assert f"dead letters in {settings.topic(DEAD_LETTER.name)}: 2" in text.output
    assert "offset 1  " in text.output
    assert f"from {topic}  by {CONSUMER}" in text.output
    assert "  event evt-9  " in text.output
    assert "  reason: unprocessable " in text.output
    assert "  reason: bad envelope: " in text.output
    only_events = await stallctl(isolation, "dlq", "list", "--json", "--source-topic", "bookings")
    assert len(json.loads(only_events.stdout)) == 2
    other = await stallctl(isolation, "dlq", "list", "--json", "--consumer", "reporting/reporting")
    assert json.loads(other.stdout) == []

    # The handler is fixed; the event is sent again, exactly as it was, and applied.
    ledger.fixed = True
    reader = TopicReader(settings.kafka_bootstrap_servers, topic)
    await reader.start()
    try:
        replayed = await stallctl(isolation, "dlq", "replay", "--offset", "1")
        assert replayed.exit_code == 0, replayed.output
        assert f"offset 1 → {topic}" in replayed.output
        assert "key XZ-07  event evt-9" in replayed.output
        await eventually(lambda: _is(ledger.applied, [("evt-9", "XZ-07")]))
        records = await reader.collect_until(lambda rs: any(map(replay_of, rs)))
    finally:
        await reader.stop()
    [original] = [r for r in records if r.value.startswith(b"{") and not replay_of(r)]
    [again] = [r for r in records if replay_of(r)]
    assert (again.key, again.value) == (b"XZ-07", original.value)
    headers = dict(again.headers)
    assert headers["dlq-replayed-from"] == f"{settings.topic(DEAD_LETTER.name)}:0:1".encode()
    assert DLQ_REASON_HEADER not in headers
    assert {k: v for k, v in headers.items() if k != "dlq-replayed-from"} == dict(original.headers)


async def test_replay_needs_a_choice_and_refuses_unknown_offsets(
    isolation: Isolation, settings: CommonSettings
) -> None:
    nothing = await stallctl(isolation, "dlq", "replay")
    assert nothing.exit_code == 2
    assert "--offset" in nothing.output
    unknown = await stallctl(isolation, "dlq", "replay", "--offset", "99")
    assert unknown.exit_code == 1
    assert "no such dead letter" in unknown.output
    both = await stallctl(isolation, "dlq", "replay", "--offset", "0", "--all")
    assert both.exit_code == 2
    none = await stallctl(isolation, "dlq", "replay", "--all", "--consumer", "nobody/none")
    assert none.exit_code == 0, none.output
    assert "replayed: 0" in none.output


def replay_of(record: Any) -> bytes | None:
    """The ``dlq-replayed-from`` header of a consumed record, if it is a replay."""
    value: bytes | None = dict(record.headers).get("dlq-replayed-from")
    return value


async def _is(value: Any, expected: Any) -> bool:
    return bool(value == expected)


async def test_dead_letters_produced_together_are_all_listed(
    isolation: Isolation, settings: CommonSettings
) -> None:
    """Several dead letters sent in one producer batch (as consumers working on several
    partitions at once send them): the embedded broker's end offset is the batch's first
    record + 1, and the list still shows every one."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=50, acks="all"
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                settings.topic(DEAD_LETTER.name),
                b"not json",
                key=b"XZ-01",
                partition=0,
                headers=[(DLQ_REASON_HEADER, f"reason {n}".encode())],
            )
            for n in range(5)
        ]
        offsets = [(await s).offset for s in sent]
    finally:
        await producer.stop()
    assert offsets == list(range(offsets[0], offsets[0] + 5))  # one batch, one after another

    result = await stallctl(isolation, "dlq", "list", "--json")
    assert result.exit_code == 0, result.output
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    assert [entry["reason"] for entry in listed] == [f"reason {n}" for n in range(5)]
