"""The reporting service against a real broker and redis-server: events of all topics counted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.catalogue import Category, District, Location, Market, MarketWindow
from contracts.events import (
    BookingCreated,
    MarketChanged,
    ScanOutcome,
    ScanRecorded,
    ScheduleChanged,
    WindowOpened,
)
from contracts.topics import DEAD_LETTER, DLQ_CONSUMER_HEADER, DLQ_REASON_HEADER, INSPECTION
from reporting.adapters.stats_store import RedisStatsStore
from reporting.app import create_app
from reporting.config import ReportingSettings
from reporting.domain.stats import ALL, CountedEvent, EventStats, Scope, ScopeKind
from stallkit.messaging import publish_event

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]


def events(now: datetime) -> tuple[MarketChanged, BookingCreated, WindowOpened, ScanRecorded]:
    """One event of each topic, all about market HQ-01 in Hengqin."""
    day = now.date()
    window = MarketWindow(
        id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
        start=time(17, 30), end=time(22, 30),
    )  # fmt: skip
    market = Market(
        id="HQ-01",
        district=District.HENGQIN,
        name_zh="横琴夜市",
        name_en="Hengqin Night Market",
        location=Location(lat=22.12, lon=113.53),
        zones=[Category.CRAFTS_CULTURE],
        windows=[window],
    )
    return (
        MarketChanged(market_id="HQ-01", market=market),
        BookingCreated(
            market_id="HQ-01",
            booking_id="bk_rep_1",
            vendor_id="vd_rep_1",
            stall_id="HQ-01-C001",
            date=day,
            window_id="evening",
            category=Category.CRAFTS_CULTURE,
            starts_at=now,
            ends_at=now + timedelta(hours=5),
            priority=False,
        ),
        WindowOpened(
            market_id="HQ-01",
            date=day,
            window_id="evening",
            district=District.HENGQIN,
            closes_at=now + timedelta(hours=5),
        ),
        ScanRecorded(
            market_id="HQ-01",
            district=District.HENGQIN,
            scan_id="sc_rep_1",
            stall_id="HQ-01-C001",
            outcome=ScanOutcome.COMPLIANT,
            patrol_id="patrol-hq-01",
        ),
    )


async def test_events_of_every_topic_are_counted_once_and_bad_ones_dead_lettered(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    topic_reader: Callable[[str], Awaitable[Any]],
) -> None:
    settings = reporting_settings
    client = await serve(create_app(settings, configure_logs=False))
    assert (await client.get("/v1/stats")).json() == {"events": {}, "total": 0}

    now = datetime.now(UTC)
    await publisher.publish(b"not json", topic=settings.topic(INSPECTION.name), key=b"HQ-01")
    market, *others = events(now)

    async def counted(n: int) -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get("/v1/stats")).json()
        return body if body["total"] >= n else None

    # The market first, so that the district of its later events is known.
    await publish_event(publisher, settings, market, time=now, event_id="rep-market")
    await eventually(lambda: counted(1))
    # A redelivery of the market change, then a later change in the same partition: once the
    # later one is counted, the redelivery has been consumed too.
    await publish_event(publisher, settings, market, time=now, event_id="rep-market")
    for event in others:
        await publish_event(publisher, settings, event, time=now)
    schedule = ScheduleChanged(market_id="HQ-01", windows=market.market.windows)
    await publish_event(publisher, settings, schedule, time=now)
    sent = [market, *others, schedule]

    stats = await eventually(lambda: counted(len(sent)))
    assert stats["events"] == {type(e).event_type(): 1 for e in sent}
    assert stats["total"] == len(sent)
    hengqin = (await client.get("/v1/stats", params={"district": "hengqin"})).json()
    assert hengqin["total"] == len(sent)  # the booking's district is learnt from its market
    assert (await client.get("/v1/stats", params={"market_id": "HQ-01"})).json() == stats

    reader = await topic_reader(settings.topic(DEAD_LETTER.name))
    records = await reader.collect_until(lambda rs: len(rs) >= 1)
    assert len(records) == 1
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers[DLQ_REASON_HEADER].startswith("bad envelope")
    assert headers[DLQ_CONSUMER_HEADER] == "reporting/reporting"


async def test_redis_counters_count_an_event_once_across_scopes(
    reporting_settings: ReportingSettings, redis_client: Redis
) -> None:
    store = RedisStatsStore(redis_client, reporting_settings)
    created = BookingCreated.event_type()
    first = CountedEvent("evt-1", created, "HQ-01", "hengqin")
    assert await store.count(first)
    # The consumer's dedup mark may be lost in a crash; the counters still count once.
    assert not await store.count(first)
    assert await store.count(CountedEvent("evt-2", created, "HQ-02", None))

    assert (await store.stats(ALL)) == EventStats({created: 2})
    assert (await store.stats(Scope(ScopeKind.DISTRICT, "hengqin"))).total == 1
    assert (await store.stats(Scope(ScopeKind.MARKET, "HQ-02"))).total == 1
    await store.remember_district("HQ-02", "hengqin")
    assert await store.district_of("HQ-02") == "hengqin"
    assert await store.district_of("HQ-03") is None
    assert all(
        key.startswith(reporting_settings.redis_prefix.encode() + b"rep:{stats}:")
        for key in await redis_client.keys(reporting_settings.redis_prefix + "*")
    )


async def test_a_batch_counts_each_event_once_like_one_by_one(
    reporting_settings: ReportingSettings, redis_client: Redis
) -> None:
    store = RedisStatsStore(redis_client, reporting_settings)
    created, opened = BookingCreated.event_type(), WindowOpened.event_type()
    batch = [
        CountedEvent("evt-1", created, "HQ-01", "hengqin"),
        CountedEvent("evt-2", opened, "HQ-01", "hengqin"),
        CountedEvent("evt-1", created, "HQ-01", "hengqin"),  # twice in one batch
        CountedEvent("evt-3", created, "XZ-02", None),  # no district known
    ]
    assert await store.count_many(batch) == 3
    assert await store.count_many(batch) == 0  # the batch applied again after a failure
    assert not await store.count(batch[0])
    assert (await store.stats(ALL)) == EventStats({created: 2, opened: 1})
    assert (await store.stats(Scope(ScopeKind.DISTRICT, "hengqin"))) == EventStats(
        {created: 1, opened: 1}
    )
    assert (await store.stats(Scope(ScopeKind.MARKET, "XZ-02"))) == EventStats({created: 1})
    assert await store.count_many([]) == 0
