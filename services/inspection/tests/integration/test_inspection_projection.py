"""The inspection service against a real broker and redis-server: bookings in, who's where out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.catalogue import Category, District, Location, Market, MarketWindow
from contracts.events import BookingCancelled, BookingCreated, MarketChanged
from contracts.topics import BOOKINGS, DEAD_LETTER, DLQ_CONSUMER_HEADER, DLQ_REASON_HEADER
from inspection.adapters.expectation_store import RedisExpectationStore
from inspection.app import create_app
from inspection.config import InspectionSettings
from inspection.domain.expected import MarketFacts, StallFacts
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ, Clock
from stallkit.messaging import publish_event
from stalltest.tokens import dev_token

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]


def market() -> MarketChanged:
    window = MarketWindow(
        id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
        start=time(17, 30), end=time(22, 30),
    )  # fmt: skip
    return MarketChanged(
        market_id="JW-02",
        market=Market(
            id="JW-02",
            district=District.JINWAN,
            name_zh="金湾夜市",
            name_en="Jinwan Night Market",
            location=Location(lat=22.14, lon=113.36),
            zones=[Category.DAILY_GOODS],
            windows=[window],
        ),
    )


async def test_bookings_set_who_should_be_where_and_bad_messages_are_dead_lettered(
    inspection_settings: InspectionSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    topic_reader: Callable[[str], Awaitable[Any]],
    redis_client: Redis,
) -> None:
    settings = inspection_settings
    client = await serve(create_app(settings, configure_logs=False))
    now = datetime.now(UTC)
    token = dev_token(Role.PATROL, "patrol-jw-01", district="jinwan", now=now, ttl_seconds=600)
    client.headers["Authorization"] = f"Bearer {token}"
    day = (now.astimezone(MARKET_TZ) + timedelta(days=1)).date()
    url, query = "/v1/stalls/JW-02-B004/expected", {"date": day.isoformat(), "window_id": "evening"}
    assert (await client.get(url, params=query)).json()["code"] == "no_booking"

    booking = BookingCreated(
        market_id="JW-02",
        booking_id="bk_it_1",
        vendor_id="vd_it_1",
        stall_id="JW-02-B004",
        date=day,
        window_id="evening",
        category=Category.DAILY_GOODS,
        starts_at=datetime.combine(day, time(17, 30), tzinfo=MARKET_TZ).astimezone(UTC),
        ends_at=datetime.combine(day, time(22, 30), tzinfo=MARKET_TZ).astimezone(UTC),
        priority=True,
    )
    await publish_event(publisher, settings, market(), time=now)
    await publisher.publish(
        b"\x00not an envelope", topic=settings.topic(BOOKINGS.name), key=b"JW-02"
    )
    await publish_event(publisher, settings, booking, time=now)

    async def expected() -> dict[str, Any] | None:
        response = await client.get(url, params=query)
        return response.json() if response.status_code == 200 else None

    body = await eventually(expected)
    assert body["vendor_id"] == "vd_it_1"
    assert body["booking_id"] == "bk_it_1"
    assert body["district"] == "jinwan"
    key = settings.key("insp", "{JW-02}", "expected", day.isoformat())
    assert await redis_client.hget(key, "JW-02-B004|evening") is not None
    assert 0 < await redis_client.ttl(key) <= (settings.expected_retention_days + 3) * 86400

    cancel = BookingCancelled(
        market_id="JW-02",
        booking_id="bk_it_1",
        vendor_id="vd_it_1",
        stall_id="JW-02-B004",
        date=day,
        window_id="evening",
        late=False,
    )
    await publish_event(publisher, settings, cancel, time=now)

    async def cleared() -> bool:
        return (await client.get(url, params=query)).status_code == 404

    await eventually(cleared)

    reader = await topic_reader(settings.topic(DEAD_LETTER.name))
    records = await reader.collect_until(lambda rs: len(rs) >= 1)
    assert len(records) == 1
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers[DLQ_REASON_HEADER].startswith("bad envelope")
    assert headers[DLQ_CONSUMER_HEADER] == "inspection/inspection"
    assert records[0].key == b"JW-02"


async def test_redis_store_keeps_catalogue_facts_and_ended_bookings_by_market(
    inspection_settings: InspectionSettings, redis_client: Redis
) -> None:
    clock = Clock()
    store = RedisExpectationStore(redis_client, inspection_settings, clock, retention_days=7)
    day = clock.today()
    await store.put_stall(StallFacts("JW-02-B004", "JW-02", "daily_goods", False))
    await store.put_market(MarketFacts("JW-02", "jinwan"))
    await store.mark_ended("JW-02", day, "bk_old")

    assert await store.get_stall("JW-02", "JW-02-B004") == StallFacts(
        "JW-02-B004", "JW-02", "daily_goods", False
    )
    assert await store.get_stall("JW-02", "JW-02-B005") is None
    assert await store.get_market("JW-02") == MarketFacts("JW-02", "jinwan")
    assert await store.has_ended("JW-02", day, "bk_old")
    assert not await store.has_ended("JW-02", day, "bk_new")
    keys = await redis_client.keys(inspection_settings.redis_prefix + "*")
    prefix = inspection_settings.redis_prefix.encode() + b"insp:{JW-02}:"
    assert len(keys) == 3
    assert all(key.startswith(prefix) for key in keys)
