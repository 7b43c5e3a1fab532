"""Durable boundary timers on a real single Redis and a real three-master Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from contracts.catalogue import District
from contracts.envelope import RawEnvelope
from contracts.events import EVENTS_BY_TYPE, WindowEvent
from stalltest.plugin import Infra, Isolation, RedisClusterInfo
from windows.adapters.timers import TimerStore
from windows.domain.schedule import MarketSchedule, WindowSpec
from windows.domain.timeline import Boundary, materialise

pytestmark = pytest.mark.integration

FRIDAY = date(2026, 11, 20)
EVENING = WindowSpec(
    "evening", "夜市", "Evening", (1, 2, 3, 4, 5, 6, 7), time(17, 30), time(22, 30)
)
NOON = WindowSpec("noon", "午市", "Noon", (5,), time(11, 0), time(13, 0))
Client = Redis | RedisCluster


@pytest.fixture(params=["single", "cluster"])
async def make_client(
    request: pytest.FixtureRequest, infra: Infra
) -> AsyncIterator[Callable[[], Client]]:
    """A factory of clients of the session's redis-server, or of the Redis Cluster."""
    made: list[Client] = []
    url = infra.redis_url
    cluster = request.param == "cluster"
    if cluster:
        info: RedisClusterInfo = request.getfixturevalue("redis_cluster")
        url = info.url

    def make() -> Client:
        client: Client = RedisCluster.from_url(url) if cluster else Redis.from_url(url)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def boundaries(market: str = "XZ-01") -> list[Boundary]:
    schedule = MarketSchedule(
        market, "xiangzhou", (EVENING, NOON), datetime(2026, 11, 1, tzinfo=UTC)
    )
    return materialise(schedule, FRIDAY, days=2)


async def outbox(store: TimerStore, market: str) -> list[RawEnvelope]:
    rows = await store.redis.xrange(store.keys(market).outbox)
    return [RawEnvelope.from_bytes(fields[b"value"]) for _, fields in rows]


async def test_due_boundaries_are_claimed_in_order_exactly_once_by_concurrent_claimers(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    stores = [TimerStore(make_client(), isolation.redis_prefix) for _ in range(4)]
    planned = boundaries()
    assert await stores[0].schedule(District.XIANGZHOU, planned) == len(planned)
    now = planned[0].due.replace(hour=15)  # Friday 23:00 local: all of Friday is due
    friday = [b for b in planned if b.date == FRIDAY]

    for store in stores:  # connect first: redis-py's cluster client races on parallel connects
        await store.pending("XZ-01")

    async def replica(store: TimerStore) -> list[str]:
        return [i for _ in range(5) for i in (await store.claim_due("XZ-01", now)).ids]

    results = await asyncio.gather(*(replica(store) for store in stores))

    claimed = [i for r in results for i in r]
    assert sorted(claimed) == sorted(b.id for b in friday)
    envelopes = await outbox(stores[0], "XZ-01")
    assert [e.id for e in envelopes] == [b.id for b in friday]
    assert [e.type for e in envelopes][:4] == [
        "cn.gov.zhuhai.markets.window.opened.v1",
        "cn.gov.zhuhai.markets.window.check_in_deadline_passed.v1",
        "cn.gov.zhuhai.markets.window.closing_soon.v1",
        "cn.gov.zhuhai.markets.window.closed.v1",
    ]
    for envelope, boundary in zip(envelopes, friday, strict=True):
        event = envelope.parse_data(EVENTS_BY_TYPE[envelope.type])
        assert isinstance(event, WindowEvent)
        assert (event.market_id, event.window_id, event.date) == (
            "XZ-01",
            boundary.window_id,
            FRIDAY,
        )
        assert envelope.time == boundary.due
    pending = await stores[1].pending("XZ-01")
    assert [i for i, _ in pending] == [b.id for b in planned if b.date > FRIDAY]
    assert await stores[0].published_at("XZ-01", friday[0].id) == now


async def test_rescheduling_a_published_boundary_does_nothing(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    store = TimerStore(make_client(), isolation.redis_prefix)
    planned = boundaries()
    await store.schedule(District.XIANGZHOU, planned)
    first = planned[0]
    claimed = await store.claim_due("XZ-01", first.due)
    assert claimed.ids == (first.id,)

    assert await store.schedule(District.XIANGZHOU, planned) == 0
    again = await store.claim_due("XZ-01", first.due + timedelta(seconds=1))

    assert again.ids == ()
    assert [e.id for e in await outbox(store, "XZ-01")] == [first.id]
    assert claimed.next_due == planned[1].due


async def test_boundaries_more_than_a_day_old_are_recorded_not_published(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    store = TimerStore(make_client(), isolation.redis_prefix)
    planned = boundaries()
    await store.schedule(District.XIANGZHOU, planned)
    now = planned[0].due + timedelta(days=1, hours=2)  # Saturday 19:30 local

    claimed = await store.claim_due("XZ-01", now)

    stale = {b.id for b in planned if now - b.due > timedelta(days=1)}
    assert stale
    assert set(claimed.ids) >= stale
    published = {e.id for e in await outbox(store, "XZ-01")}
    assert published == set(claimed.ids) - stale
    assert [await store.published_at("XZ-01", i) for i in stale] == [now] * len(stale)


async def test_unschedule_withdraws_future_boundaries_only(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    store = TimerStore(make_client(), isolation.redis_prefix)
    planned = boundaries()
    await store.schedule(District.XIANGZHOU, planned)

    removed = await store.unschedule("XZ-01", FRIDAY + timedelta(days=1))

    assert sorted(removed) == sorted(b.id for b in planned if b.date > FRIDAY)
    assert [i for i, _ in await store.pending("XZ-01")] == [
        b.id for b in planned if b.date == FRIDAY
    ]


async def test_timers_survive_a_new_client_and_the_index_lists_due_markets(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    before = TimerStore(make_client(), isolation.redis_prefix)
    await before.schedule(District.XIANGZHOU, boundaries("XZ-01"))
    await before.schedule(District.XIANGZHOU, boundaries("XZ-02")[4:])
    await before.redis.aclose()
    after = TimerStore(make_client(), isolation.redis_prefix)
    first = boundaries("XZ-01")[0]

    assert await after.due_markets(first.due - timedelta(seconds=1)) == []
    assert await after.due_markets(first.due) == ["XZ-01"]
    claimed = await after.claim_due("XZ-01", first.due)

    assert claimed.ids == (first.id,)
    assert [e.type for e in await outbox(after, "XZ-01")] == [
        "cn.gov.zhuhai.markets.window.opened.v1"
    ]
    assert await after.due_markets(first.due) == []
