"""The windows service configured with a Redis Cluster URL: a window opens on time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio.cluster import RedisCluster

from contracts.catalogue import Category, District, Location, Market, MarketWindow
from contracts.envelope import RawEnvelope
from contracts.events import MarketChanged
from contracts.topics import WINDOWS
from stallkit.auth import Role
from stallkit.messaging import publish_event
from stalltest.plugin import RedisClusterInfo
from stalltest.tokens import bearer, dev_token
from windows.app import create_app
from windows.config import WindowsSettings

pytestmark = pytest.mark.integration

# Friday 17:29:40 local: 20 s before the window opens, which leaves room for a slow consumer
# join on a busy machine (the service must learn the market while the window is still ahead).
NOW = datetime(2026, 11, 20, 9, 29, 40, tzinfo=UTC)
MARKET = "XZ-08"
EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
    start=clock_time(17, 30), end=clock_time(20, 0),
)  # fmt: skip


def market_changed() -> MarketChanged:
    market = Market(
        id=MARKET,
        district=District.XIANGZHOU,
        name_zh="香洲夜市",
        name_en="Xiangzhou Night Market",
        location=Location(lat=22.27, lon=113.57),
        zones=[Category.COOKED_FOOD],
        windows=[EVENING],
    )
    return MarketChanged(market_id=MARKET, market=market)


def opened(records: list[Any]) -> list[Any]:
    envelopes = [RawEnvelope.from_bytes(r.value) for r in records]
    return [e for e in envelopes if e.type.endswith("window.opened.v1")]


async def test_a_window_opens_on_time_on_a_cluster(
    windows_settings: WindowsSettings,
    redis_cluster: RedisClusterInfo,
    serve: Callable[[Any], Awaitable[httpx.AsyncClient]],
    publisher: KafkaBroker,
    eventually: Callable[..., Awaitable[Any]],
    topic_reader: Callable[[str], Awaitable[Any]],
) -> None:
    reader = await topic_reader(windows_settings.topic(WINDOWS.name))
    settings = windows_settings.model_copy(
        update={
            "redis_url": redis_cluster.cluster_url,
            "clock_offset_seconds": NOW.timestamp() - time.time(),
        }
    )
    app = create_app(settings, configure_logs=False)
    assert isinstance(app._application.state.redis, RedisCluster)
    client = await serve(app)
    await publish_event(publisher, settings, market_changed(), time=NOW - timedelta(days=1))
    admin = bearer(dev_token(Role.ADMIN, "admin-1", now=NOW))

    async def evening(state: str) -> bool:
        r = await client.get(f"/v1/markets/{MARKET}/timeline", headers=admin)
        return r.status_code == 200 and [i["state"] for i in r.json()][:1] == [state]

    await eventually(lambda: evening("scheduled"), timeout=20)
    await eventually(lambda: evening("open"), timeout=30)
    records = await reader.collect_until(lambda rs: bool(opened(rs)), timeout=20)
    (event,) = opened(records)
    assert (event.data["market_id"], event.data["window_id"]) == (MARKET, "evening")
    assert (await client.get("/readyz")).status_code == 200
