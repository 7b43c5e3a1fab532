"""Two allocation replicas (separate processes) share one outbox: its events leave in commit order.

Commit order, soundly: bookings are made one at a time, each request sent only once the previous
one was answered, alternating between the replicas. A 201 is sent after the booking script
committed (and XADDed the event), so the order of the answers is the order of the commits and
of the outbox stream, and Kafka must show the same order. Concurrency between the replicas'
relays is what is under test, not concurrency of commits (Redis runs one script at a time).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from allocation.adapters.keys import Keys
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.model import PriorityGroup, Vendor
from contracts.catalogue import Catalogue, Category, District, Location, Market, MarketWindow, Stall
from contracts.topics import BOOKINGS
from stallctl import procs
from stallkit.auth import Role
from stallkit.outbox import lease_key
from stalltest.allocation import MONDAY, TUESDAY, local
from stalltest.plugin import Isolation, TopicReader
from stalltest.tokens import dev_token

pytestmark = pytest.mark.integration

MARKET = "XZ-80"
STALLS = [f"{MARKET}-A{i:03d}" for i in range(1, 1000)] + [f"{MARKET}-B001"]
NOW = local(MONDAY, 10)
ROUND = 200  # the relay's round size: at most this many events are re-sent after a crash


@dataclass
class Replica:
    """One allocation process."""

    name: str
    proc: subprocess.Popen[bytes]
    http: httpx.AsyncClient

    async def metric(self, name: str) -> float | None:
        """A metric from its /metrics, summed over its labelled series."""
        found = [
            float(line.rsplit(maxsplit=1)[1])
            for line in (await self.http.get("/metrics")).text.splitlines()
            if line.startswith((f"{name} ", f"{name}{{"))
        ]
        return sum(found) if found else None


def _catalogue() -> Catalogue:
    evening = MarketWindow(
        id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
        start=clock_time(17, 30), end=clock_time(22, 30),
    )  # fmt: skip
    market = Market(
        id=MARKET, district=District.XIANGZHOU, name_zh="千摊夜市", name_en="Thousand Stalls",
        location=Location(lat=22.27, lon=113.57), zones=[Category.DAILY_GOODS], windows=[evening],
    )  # fmt: skip
    stalls = [Stall(id=s, market_id=MARKET, category=Category.DAILY_GOODS) for s in STALLS]
    return Catalogue(markets=[market], stalls=stalls)


async def _vendors(redis: Redis, prefix: str, count: int) -> list[str]:
    """Vendors written straight to the store (fast); returns their tokens."""
    store = VendorStore(redis, Keys(prefix))
    connections = asyncio.Semaphore(32)

    async def one(i: int) -> str:
        vendor = Vendor(
            id=f"vd_rep{i:05d}", name=f"摊贩{i}", phone=f"136{i:08d}",
            priority_group=PriorityGroup.LOW_INCOME, categories=frozenset(Category),
            health_certificate_expires=date(2099, 1, 1), suspended_until=None, created_at=NOW,
        )  # fmt: skip
        async with connections:
            assert await store.create(vendor, "no-login")
        return dev_token(Role.VENDOR, vendor.id, now=NOW, ttl_seconds=86400)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.fixture
async def replicas(isolation: Isolation, tmp_path: Path) -> AsyncIterator[list[Replica]]:
    """Two allocation processes on this test's prefixes, clocks at 10:00 on MONDAY."""
    env = {
        **os.environ,
        **isolation.env(),
        "STALL_CLOCK_OFFSET_SECONDS": str(NOW.timestamp() - time.time()),
        "STALL_LOG_LEVEL": "WARNING",
    }
    started: list[Replica] = []
    try:
        for name in ("replica-a", "replica-b"):
            port = procs.free_port()
            args = [sys.executable, "-m", "uvicorn", "allocation.app:app", "--port", str(port),
                    "--no-access-log", "--log-level", "warning"]  # fmt: skip
            proc = procs.spawn(args, env=env, log_path=tmp_path / f"{name}.log")
            http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
            started.append(Replica(name, proc, http))
        for replica in started:
            await _ready(replica)
        yield started
    finally:
        for replica in started:
            await replica.http.aclose()
            procs.stop(replica.proc)


async def _ready(replica: Replica) -> None:
    for _ in range(600):
        assert replica.proc.poll() is None, f"{replica.name} exited"
        try:
            if (await replica.http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{replica.name} not ready")


async def _book(replica: Replica, token: str, stall: str, day: date, key: str) -> str:
    response = await replica.http.post(
        "/v1/bookings",
        json={"stall_id": stall, "date": day.isoformat(), "window_id": "evening"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )
    assert response.status_code == 201, (replica.name, response.text)
    return str(response.json()["id"])


def _created(records: list[Any]) -> list[tuple[str, str]]:
    """(event id, booking id) of each BookingCreated record, in arrival order."""
    events = [json.loads(r.value) for r in records]
    found = [(e["id"], e["data"]["booking_id"]) for e in events if e["type"].endswith("created.v1")]
    return found


async def _holder(redis: Redis, lease: str, replicas: list[Replica]) -> Replica:
    owner = (await redis.get(lease)).decode()  # "<host>-<pid>/<token>"
    pid = int(owner.split("/")[0].rsplit("-", 1)[1])
    (holder,) = [r for r in replicas if r.proc.pid == pid]
    return holder


async def test_two_replicas_relay_bookings_in_commit_order_even_when_the_holder_is_killed(
    isolation: Isolation,
    replicas: list[Replica],
    redis_client: Redis,
    topic_reader: Callable[[str], Any],
    eventually: Callable[..., Any],
) -> None:
    keys = Keys(isolation.redis_prefix)
    outbox, lease = keys.outbox(), lease_key(keys.outbox())
    reader: TopicReader = await topic_reader(f"{isolation.topic_prefix}{BOOKINGS.name}")
    admin = dev_token(Role.ADMIN, "admin", now=NOW, ttl_seconds=86400)

    imported = await replicas[0].http.put(
        "/v1/admin/catalogue",
        json=_catalogue().model_dump(mode="json"),
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert imported.status_code == 200, imported.text
    tokens = await _vendors(redis_client, isolation.redis_prefix, len(STALLS))

    async def both_see_the_market() -> bool:
        for replica in replicas:
            got = await replica.http.get(f"/v1/markets/{MARKET}/availability?date={MONDAY}")
            if got.status_code != 200 or got.json()["windows"][0]["free"] != len(STALLS):
                return False
        return True

    await eventually(both_see_the_market)

    # Phase 1: 1,000 bookings, one at a time, alternating replicas; both relays are running.
    began = time.perf_counter()
    committed = [
        await _book(replicas[i % 2], tokens[i], stall, MONDAY, f"mon-{i}")
        for i, stall in enumerate(STALLS)
    ]
    records = await reader.collect_until(lambda rs: len(_created(rs)) >= len(committed), 60)
    print(f"\n1,000 bookings committed and on Kafka in {time.perf_counter() - began:.2f} s")
    assert [booking for _, booking in _created(records)] == committed  # in order, each once
    assert {(r.key, r.partition) for r in records} == {(MARKET.encode(), records[0].partition)}
    assert await eventually(lambda: _zero(redis_client.xlen(outbox)))
    holder = await _holder(redis_client, lease, replicas)
    (survivor,) = [r for r in replicas if r is not holder]
    assert await holder.metric("outbox_lease_held") == 1.0
    assert await survivor.metric("outbox_lease_held") == 0.0
    assert await survivor.metric("outbox_published_total") == 0.0

    # Phase 2: the holder is killed (SIGKILL) a third of the way in; bookings go on through
    # the survivor, which takes the lease over once it expires and relays everything.
    seen = len(records)
    committed = []
    for i, stall in enumerate(STALLS[:600]):
        if i == 200:
            holder.proc.kill()
            holder.proc.wait(10)
        replica = survivor if i >= 200 else replicas[i % 2]
        committed.append(await _book(replica, tokens[i], stall, TUESDAY, f"tue-{i}"))
    last_commit = time.perf_counter()

    def phase_two(rs: list[Any]) -> list[tuple[str, str]]:
        return _created(rs[seen:])

    records = await reader.collect_until(
        lambda rs: len({booking for _, booking in phase_two(rs)}) >= len(committed), 60
    )
    arrived = phase_two(records)
    print(f"all there {time.perf_counter() - last_commit:.2f} s after the last commit")
    first_seen = list(dict.fromkeys(arrived))  # what a consumer deduplicating by event id sees
    assert [booking for _, booking in first_seen] == committed  # no gap, no reorder
    assert len(first_seen) == len(committed)  # a re-sent event keeps its event id
    assert len(arrived) - len(first_seen) <= ROUND  # at most the killed holder's last round
    assert await _holder(redis_client, lease, replicas) is survivor
    assert await survivor.metric("outbox_lease_held") == 1.0
    assert await eventually(lambda: _zero(redis_client.xlen(outbox)))


async def _zero(count: Any) -> bool:
    return await count == 0
