"""Durable boundary timers on a real single Redis and a real three-master Redis Cluster."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from contracts.catalogue import District
from contracts.envelope import RawEnvelope
from contracts.events import EVENTS_BY_TYPE, WindowEvent
from stallctl import procs
from stalltest.plugin import Infra, Isolation, RedisClusterInfo
from windows.adapters.timers import TimerStore
from windows.domain.plan import Timer, boundary_timer, plan_market
from windows.domain.schedule import MarketSchedule, WindowSpec
from windows.domain.timeline import Timing, materialise

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


def schedule_of(market: str = "XZ-01", *windows: WindowSpec) -> MarketSchedule:
    return MarketSchedule(
        market, "xiangzhou", windows or (EVENING, NOON), datetime(2026, 11, 1, tzinfo=UTC)
    )


def boundaries(market: str = "XZ-01") -> list[Timer]:
    return [
        boundary_timer(b, District.XIANGZHOU)
        for b in materialise(schedule_of(market), FRIDAY, days=2)
    ]


async def outbox(store: TimerStore, market: str) -> list[RawEnvelope]:
    rows = await store.redis.xrange(store.keys(market).outbox)
    return [RawEnvelope.from_bytes(fields[b"value"]) for _, fields in rows]


async def test_due_boundaries_are_claimed_in_order_exactly_once_by_concurrent_claimers(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    stores = [TimerStore(make_client(), isolation.redis_prefix) for _ in range(4)]
    planned = boundaries()
    assert await stores[0].schedule(planned) == len(planned)
    now = planned[0].due.replace(hour=15)  # Friday 23:00 local: all of Friday is due
    friday = [b for b in planned if b.day == FRIDAY]

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
            boundary.instance.split("|")[1] if boundary.instance else None,
            FRIDAY,
        )
        assert envelope.time == boundary.due
    pending = await stores[1].pending("XZ-01")
    assert [t.id for t in pending] == [b.id for b in planned if b.day and b.day > FRIDAY]
    assert await stores[0].published_at("XZ-01", [friday[0].id]) == {friday[0].id: now}


async def test_rescheduling_a_published_boundary_does_nothing(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    store = TimerStore(make_client(), isolation.redis_prefix)
    planned = boundaries()
    await store.schedule(planned)
    first = planned[0]
    claimed = await store.claim_due("XZ-01", first.due)
    assert claimed.ids == (first.id,)

    assert await store.schedule(planned) == 0
    again = await store.claim_due("XZ-01", first.due + timedelta(seconds=1))

    assert again.ids == ()
    assert [e.id for e in await outbox(store, "XZ-01")] == [first.id]
    assert claimed.next_due == planned[1].due


async def test_boundaries_more_than_a_day_old_are_recorded_not_published(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    store = TimerStore(make_client(), isolation.redis_prefix)
    planned = boundaries()
    await store.schedule(planned)
    now = planned[0].due + timedelta(days=1, hours=2)  # Saturday 19:30 local

    claimed = await store.claim_due("XZ-01", now)

    stale = {b.id for b in planned if now - b.due > timedelta(days=1)}
    assert stale
    assert set(claimed.ids) >= stale
    published = {e.id for e in await outbox(store, "XZ-01")}
    assert published == set(claimed.ids) - stale
    assert await store.published_at("XZ-01", sorted(stale)) == dict.fromkeys(stale, now)


async def test_a_plan_withdraws_removed_windows_once_and_leaves_started_instances_alone(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    store = TimerStore(make_client(), isolation.redis_prefix)
    now = datetime(2026, 11, 20, 9, 40, tzinfo=UTC)  # Friday 17:40 local: evening has begun
    first = plan_market(schedule_of(), District.XIANGZHOU, [], now, days=2)
    await store.replan(first, now - timedelta(hours=7))
    await store.claim_due("XZ-01", now)  # noon opened and closed, evening opened
    later = datetime(2026, 11, 2, tzinfo=UTC)
    noon_only = replace(schedule_of("XZ-01", NOON), as_of=later)

    result = await store.replan(plan_market(noon_only, District.XIANGZHOU, [], now, days=2), now)

    # Friday's evening had started: it runs to its end; Saturday's evening is withdrawn.
    assert result.withdrawn == (f"{FRIDAY + timedelta(days=1)}|evening",)
    pending = await store.pending("XZ-01")
    assert {(t.day, t.kind) for t in pending if t.instance and "evening" in t.instance} == {
        (FRIDAY, "check_in_deadline_passed"),
        (FRIDAY, "closing_soon"),
        (FRIDAY, "closed"),
    }
    cancelled = [e for e in await outbox(store, "XZ-01") if e.type.endswith("window.cancelled.v1")]
    assert len(cancelled) == 1
    again = await store.replan(plan_market(noon_only, District.XIANGZHOU, [], now, days=2), now)
    assert again.withdrawn == ()
    # A plan from older inputs (a slow replica) is refused.
    stale = await store.replan(first, now)
    assert stale.stale
    assert len(await store.pending("XZ-01")) == len(pending)


async def test_timers_survive_a_new_client_and_the_index_lists_due_markets(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    before = TimerStore(make_client(), isolation.redis_prefix)
    await before.schedule(boundaries("XZ-01"))
    await before.schedule(boundaries("XZ-02")[4:])
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


async def test_timers_survive_a_redis_server_killed_and_restarted_from_its_append_only_file(
    tmp_path: Path,
) -> None:
    port = procs.free_port()
    args = [*procs.redis_args(port, tmp_path, persistent=True), "--appendfsync", "always"]

    def start() -> subprocess.Popen[bytes]:
        proc = procs.spawn(args, log_path=tmp_path / "redis.log")
        procs.wait_for_port(port)
        return proc

    proc = start()
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        store = TimerStore(client)
        planned = boundaries()
        await store.schedule(planned)
        first = await store.claim_due("XZ-01", planned[0].due)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start()
        await client.aclose()
        client = Redis.from_url(f"redis://127.0.0.1:{port}/0")
        store = TimerStore(client)

        assert [t.id for t in await store.pending("XZ-01")] == [t.id for t in planned[1:]]
        assert await store.published_at("XZ-01", list(first.ids)) == {planned[0].id: planned[0].due}
        again = await store.claim_due("XZ-01", planned[1].due)
        assert again.ids == (planned[1].id,)  # the claimed one is not claimed twice
        outbox_ids = [e.id for e in await outbox(store, "XZ-01")]
        assert outbox_ids == [planned[0].id, planned[1].id]
    finally:
        await client.aclose()
        procs.stop(proc)


async def test_many_markets_are_claimed_at_once_and_late_timers_say_how_late(
    make_client: Callable[[], Client], isolation: Isolation
) -> None:
    store = TimerStore(make_client(), isolation.redis_prefix)
    markets = ["XZ-01", "XZ-02", "DM-03"]
    planned = {m: boundaries(m) for m in markets}
    for timers in planned.values():
        await store.schedule(timers)
    first = planned["XZ-01"][0]
    seen: list[tuple[str, Timing]] = []

    on_time = await store.claim_many(
        markets, first.due + timedelta(seconds=1), lambda t, timing, _: seen.append((t.id, timing))
    )

    assert {m: c.ids for m, c in on_time.items()} == {m: (planned[m][0].id,) for m in markets}
    assert {timing for _, timing in seen} == {Timing.ON_TIME}
    # Ten minutes later the next two of each market are late: claimed in order, marked late.
    later = planned["XZ-01"][2].due + timedelta(minutes=10)
    late = await store.claim_many(markets, later)
    for m in markets:
        assert late[m].ids == tuple(t.id for t in planned[m][1:3])
        envelopes = await outbox(store, m)
        mine = [e for e in envelopes if e.data["market_id"] == m]
        assert [e.id for e in mine] == [t.id for t in planned[m][:3]]
        assert mine[0].data.get("late_by_seconds") is None
        assert [e.data["late_by_seconds"] for e in mine[1:]] == [
            (later - t.due).total_seconds() for t in planned[m][1:3]
        ]
    assert await store.due_markets(later) == []
