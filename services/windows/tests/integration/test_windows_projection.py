"""The windows service against a real broker and redis-server: catalogue in, schedule out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.catalogue import Category, District, Location, Market, MarketWindow
from contracts.events import MarketChanged, ScheduleChanged
from contracts.topics import CATALOGUE, DEAD_LETTER, DLQ_CONSUMER_HEADER, DLQ_REASON_HEADER
from stallkit.messaging import publish_event
from windows.adapters.schedule_store import RedisScheduleStore, schedule_to_json
from windows.app import create_app
from windows.config import WindowsSettings
from windows.domain.schedule import MarketSchedule

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]

EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(17, 30), end=time(22, 30),
)  # fmt: skip
MORNING = MarketWindow(
    id="morning", name_zh="早市", name_en="Morning", days=[6, 7], start=time(6), end=time(10)
)


def market_changed(market_id: str) -> MarketChanged:
    market = Market(
        id=market_id,
        district=District.DOUMEN,
        name_zh="斗门夜市",
        name_en="Doumen Night Market",
        location=Location(lat=22.21, lon=113.29),
        zones=[Category.FRESH_PRODUCE],
        windows=[EVENING],
    )
    return MarketChanged(market_id=market_id, market=market)


async def test_catalogue_events_build_the_schedule_and_bad_messages_are_dead_lettered(
    windows_settings: WindowsSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    topic_reader: Callable[[str], Awaitable[Any]],
    redis_client: Redis,
) -> None:
    client = await serve(create_app(windows_settings, configure_logs=False))
    assert (await client.get("/v1/markets/DM-01/schedule")).json()["code"] == "market_not_found"

    now = datetime.now(UTC)
    await publisher.publish(
        b'{"id": "no-envelope-here"}',
        topic=windows_settings.topic(CATALOGUE.name),
        key=b"DM-01",
    )
    await publish_event(publisher, windows_settings, market_changed("DM-01"), time=now)
    await publish_event(
        publisher,
        windows_settings,
        ScheduleChanged(market_id="DM-01", windows=[EVENING, MORNING]),
        time=now,
    )

    async def schedule_has_both_windows() -> dict[str, Any] | None:
        response = await client.get("/v1/markets/DM-01/schedule")
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if len(body["windows"]) == 2 else None

    body = await eventually(schedule_has_both_windows)
    assert body["district"] == "doumen"
    assert [w["id"] for w in body["windows"]] == ["evening", "morning"]
    # Stored under the test's prefix, grouped by market with a hash tag.
    assert await redis_client.exists(windows_settings.key("win", "{DM-01}", "schedule"))

    reader = await topic_reader(windows_settings.topic(DEAD_LETTER.name))
    records = await reader.collect_until(lambda rs: len(rs) >= 1)
    assert len(records) == 1
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers[DLQ_REASON_HEADER].startswith("bad envelope")
    assert headers[DLQ_CONSUMER_HEADER] == "windows/windows"
    assert records[0].value == b'{"id": "no-envelope-here"}'


async def test_schedules_stored_before_the_market_set_existed_are_found_by_their_keys(
    windows_settings: WindowsSettings, redis_client: Redis
) -> None:
    store = RedisScheduleStore(redis_client, windows_settings)
    old = MarketSchedule("DM-09", "doumen", (), datetime(2026, 11, 1, tzinfo=UTC))
    await redis_client.set(
        windows_settings.key("win", "{DM-09}", "schedule"), schedule_to_json(old)
    )

    assert await store.market_ids() == ["DM-09"]
    assert await redis_client.smembers(windows_settings.key("win", "markets")) == {b"DM-09"}
