"""The district feeds' log on a real redis-server: once per event, ordered, resumable, trimmed
to its retention with expired positions told apart."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from redis.asyncio import Redis

from reporting.adapters.feed_log import FeedLog, id_before
from reporting.config import ReportingSettings
from reporting.domain.feed import NewEntry

pytestmark = pytest.mark.integration

T = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


def entry(n: int, district: str | None = "xiangzhou") -> dict[str, Any]:
    return {
        "event_id": f"ev-{n}",
        "type": "booking.created",
        "market_id": "XZ-07",
        "district": district,
        "time": T + dt.timedelta(seconds=n),
        "summary_zh": f"第 {n} 条",
        "summary_en": f"entry {n}",
        "event": {"n": n},
    }


async def test_an_event_is_logged_once_in_its_district_and_in_all_and_read_back_in_order(
    redis_client: Redis, reporting_settings: ReportingSettings
) -> None:
    log = FeedLog(redis_client, reporting_settings, dt.timedelta(days=7))
    first = await log.append(**entry(1))
    assert set(first.ids) == {"xiangzhou", "all"}
    assert (await log.append(**entry(1))).ids == {}  # a redelivery: nothing new
    await log.append(**entry(2, district=None))  # no district known: only in "all"
    await log.append(**entry(3))
    mine = await log.read("xiangzhou", None)
    assert [e.event_id for e in mine] == ["ev-1", "ev-3"]
    assert [e.event_id for e in await log.read("all", None)] == ["ev-1", "ev-2", "ev-3"]
    assert [e.event_id for e in await log.read("xiangzhou", mine[0].id)] == ["ev-3"]
    assert mine[0].summary_zh == "第 1 条"
    assert mine[0].event == {"n": 1}
    assert mine[1].id == await log.last_id("xiangzhou")
    assert id_before(mine[0].id, mine[1].id)
    assert not id_before(mine[1].id, mine[0].id)
    assert await log.read("doumen", None) == []


async def test_a_position_older_than_the_retention_is_expired_not_a_silent_gap(
    redis_client: Redis, reporting_settings: ReportingSettings
) -> None:
    log = FeedLog(redis_client, reporting_settings, dt.timedelta(milliseconds=300))
    old = (await log.append(**entry(1))).ids["xiangzhou"]
    await asyncio.sleep(0.4)
    new = (await log.append(**entry(2))).ids["xiangzhou"]
    assert [e.id for e in await log.read("xiangzhou", None)] == [new]  # ev-1 trimmed
    assert await log.expired("xiangzhou", "0-0")  # from the start: ev-1 was missed
    assert not await log.expired("xiangzhou", old)  # saw ev-1: nothing missed
    assert not await log.expired("xiangzhou", new)
    waiting = asyncio.create_task(log.wait("xiangzhou", new, block_ms=5000))
    await asyncio.sleep(0.1)
    await log.append(**entry(3))
    assert [e.event_id for e in await asyncio.wait_for(waiting, 5)] == ["ev-3"]


async def test_a_batch_is_logged_in_order_once_per_event_as_one_by_one(
    redis_client: Redis, reporting_settings: ReportingSettings
) -> None:
    log = FeedLog(redis_client, reporting_settings, dt.timedelta(days=7))
    await log.append(**entry(1))
    batch = [
        NewEntry(**entry(1)),  # appended before: not again
        NewEntry(**entry(2, district="doumen")),
        NewEntry(**entry(3, district=None)),
        NewEntry(**entry(4)),
        NewEntry(**entry(4)),  # twice in one batch
        NewEntry(**entry(5, district="doumen")),
    ]
    assert await log.append_many(batch) == 4
    assert await log.append_many(batch) == 0  # the batch applied again after a failure
    assert [e.event_id for e in await log.read("all", None)] == [f"ev-{n}" for n in range(1, 6)]
    assert [e.event_id for e in await log.read("xiangzhou", None)] == ["ev-1", "ev-4"]
    doumen = await log.read("doumen", None)
    assert [e.event_id for e in doumen] == ["ev-2", "ev-5"]
    assert (doumen[0].district, doumen[0].summary_zh, doumen[0].event) == (
        "doumen",
        "第 2 条",
        {"n": 2},
    )
    assert doumen[0].time == T + dt.timedelta(seconds=2)


async def test_a_batch_trims_what_is_older_than_the_retention(
    redis_client: Redis, reporting_settings: ReportingSettings
) -> None:
    log = FeedLog(redis_client, reporting_settings, dt.timedelta(milliseconds=300))
    old = (await log.append(**entry(1))).ids["xiangzhou"]
    await asyncio.sleep(0.4)
    assert await log.append_many([NewEntry(**entry(2)), NewEntry(**entry(3))]) == 2
    assert [e.event_id for e in await log.read("xiangzhou", None)] == ["ev-2", "ev-3"]
    assert [e.event_id for e in await log.read("all", None)] == ["ev-2", "ev-3"]
    assert await log.expired("xiangzhou", "0-0")
    assert not await log.expired("xiangzhou", old)
