"""The reporting service configured with a Redis Cluster URL: events from Kafka reach the
district's feed (Server-Sent Events) and the city's, in order, and are counted once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio.cluster import RedisCluster

from contracts.catalogue import District
from contracts.events import ScanOutcome, ScanRecorded, WindowOpened
from reporting.adapters.facts_store import FactsStore
from reporting.app import create_app
from reporting.config import ReportingSettings
from reporting.domain.figures import local_day
from stallkit.auth import Role
from stallkit.messaging import publish_event
from stallkit.redis_client import redis_client
from stalltest.plugin import RedisClusterInfo
from stalltest.sse import SseReader
from stalltest.tokens import bearer, dev_token

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 7)
XZ = dev_token(Role.DISTRICT, "xz-office", district="xiangzhou")
ADMIN = dev_token(Role.ADMIN, "city-admin")
#: Long enough for the reporting consumer to join its group (~5 s) and catch up.
FIRST = 60.0


def opened(market_id: str, district: District) -> WindowOpened:
    return WindowOpened(
        market_id=market_id, date=DAY, window_id="evening", district=district,
        closes_at=datetime(2026, 12, 7, 14, 30, tzinfo=UTC),
    )  # fmt: skip


async def test_events_reach_the_district_feed_on_a_cluster(
    reporting_settings: ReportingSettings,
    redis_cluster: RedisClusterInfo,
    publisher: KafkaBroker,
    serve: Callable[[Any], Awaitable[httpx.AsyncClient]],
) -> None:
    settings = reporting_settings.model_copy(
        update={"redis_url": redis_cluster.cluster_url, "feed_heartbeat_seconds": 1.0}
    )
    app = create_app(settings, configure_logs=False)
    assert isinstance(app._application.state.redis, RedisCluster)
    client = await serve(app)

    async def send(event: Any) -> str:
        envelope = await publish_event(publisher, settings, event, time=datetime.now(UTC))
        return envelope.id

    def stream(district: str, token: str) -> Any:
        return client.stream(
            "GET", f"/v1/feeds/{district}/events", params={"from": "start"},
            headers=bearer(token), timeout=httpx.Timeout(10.0, read=FIRST),
        )  # fmt: skip

    async with stream("xiangzhou", XZ) as mine, stream("all", ADMIN) as city:
        assert mine.status_code == 200, await mine.aread()
        assert city.status_code == 200, await city.aread()
        xz = await send(opened("XZ-01", District.XIANGZHOU))
        dm = await send(opened("DM-01", District.DOUMEN))
        scan = ScanRecorded(
            market_id="XZ-01", district=District.XIANGZHOU, scan_id="sc_cluster_1",
            stall_id="XZ-01-A001", outcome=ScanOutcome.COMPLIANT, patrol_id="p-xz-1",
        )  # fmt: skip
        scanned_at = datetime.now(UTC)
        scanned = await send(scan)
        got = await SseReader(mine).take(2, timeout=FIRST)
        # Two topics: their events may interleave either way, but each reaches the feed once.
        assert sorted(e.json()["event_id"] for e in got) == sorted([xz, scanned])
        assert {e.event for e in got} == {"window.opened", "inspection.scan.recorded"}
        everything = await SseReader(city).take(3, timeout=FIRST)
        assert sorted(e.json()["event_id"] for e in everything) == sorted([xz, dm, scanned])
    # A position taken from the feed resumes it (the stream id of the log on the cluster).
    after_first = {**bearer(XZ), "Last-Event-ID": got[0].id or ""}
    async with client.stream(
        "GET", "/v1/feeds/xiangzhou/events", headers=after_first,
        timeout=httpx.Timeout(10.0, read=FIRST),
    ) as resumed:  # fmt: skip
        after = await SseReader(resumed).take(1)
        assert [e.json()["event_id"] for e in after] == [got[1].json()["event_id"]]
    assert (await client.get("/readyz")).status_code == 200
    # The scan is a report fact too, on its market's node (a batch's facts go in one pipeline).
    cluster = redis_client(redis_cluster.cluster_url, max_connections=4)
    try:
        facts = FactsStore(cluster, settings, settings.report_retention_days)
        days = {local_day(scanned_at), local_day(scanned_at + timedelta(seconds=5))}
        found, _ = await facts.days([("XZ-01", day) for day in sorted(days)], with_cases=False)
        assert any(day.scans for day in found.values()), found
    finally:
        await cluster.aclose()
