"""The outbox relay against a real redis-server and a real broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from contracts.envelope import Envelope
from contracts.events import StallReleased
from contracts.topics import BOOKINGS
from stallctl import procs
from stallkit.outbox import OutboxRelay, outbox_fields
from stallkit.settings import CommonSettings
from stalltest.plugin import Isolation, TopicReader

pytestmark = pytest.mark.integration


def _entry(i: int) -> dict[str, str]:
    event = StallReleased(
        market_id="XZ-01",
        stall_id=f"XZ-01-C{i:03d}",
        date=date(2026, 12, 7),
        window_id="evening",
        cause="cancelled",
    )
    return outbox_fields(event, Envelope.wrap(event, source="/test", time=datetime.now(UTC)))


async def test_relay_publishes_in_order_and_empties_the_outbox(
    isolation: Isolation, redis_client: Redis, topic_reader: Callable[[str], Any]
) -> None:
    settings = CommonSettings.model_validate({k.lower(): v for k, v in isolation.env().items()})
    stream = settings.key("outbox")
    entries = [_entry(i) for i in range(1, 31)]
    for fields in entries:
        await redis_client.xadd(stream, fields)
    reader = await topic_reader(settings.topic(BOOKINGS.name))
    relay = OutboxRelay(redis_client, settings, stream, consumer_name="t")
    relay.start()
    try:
        records = await reader.collect_until(lambda rs: len(rs) >= 30)
    finally:
        await relay.stop()
    assert [json.loads(r.value)["id"] for r in records] == [e["event_id"] for e in entries]
    assert {r.key for r in records} == {b"XZ-01"}
    assert await redis_client.xlen(stream) == 0


async def test_relay_waits_for_a_broker_that_is_not_there_yet(
    isolation: Isolation, redis_client: Redis
) -> None:
    port = procs.free_port()
    settings = CommonSettings.model_validate(
        {
            **{k.lower(): v for k, v in isolation.env().items()},
            "kafka_bootstrap_servers": f"127.0.0.1:{port}",
        }
    )
    stream = settings.key("outbox")
    fields = _entry(1)
    await redis_client.xadd(stream, fields)
    relay = OutboxRelay(redis_client, settings, stream, consumer_name="t")
    relay.start()
    broker = None
    try:
        reader_topic = settings.topic(BOOKINGS.name)
        assert await redis_client.xlen(stream) == 1  # nothing to send it to yet
        broker = procs.spawn(procs.broker_args(port))
        procs.wait_for_port(port, proc=broker)
        reader = TopicReader(f"127.0.0.1:{port}", reader_topic)
        await reader.start()
        try:
            records = await reader.collect_until(lambda rs: len(rs) >= 1, timeout=60)
        finally:
            await reader.stop()
        assert json.loads(records[0].value)["id"] == fields["event_id"]
    finally:
        await relay.stop()
        if broker is not None:
            procs.stop(broker)
