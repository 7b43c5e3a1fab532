"""Benchmark: booking throughput and latency beside a bare FastAPI + one-Redis-round-trip endpoint.

Starts its own broker and redis-server on free ports, the allocation service and a bare endpoint
as separate uvicorn processes, loads the seed catalogue, creates vendors, then drives each with
the same number of concurrent HTTP clients and prints bookings/s, p50/p99 and the ratio.

Run with ``make bench`` (or ``uv run python -m allocation.bench --requests 4000``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
from contracts.catalogue import Category
from contracts.seed import load_catalogue
from fastapi import FastAPI
from pydantic import BaseModel
from redis.asyncio import Redis
from stallkit import procs
from stallkit.auth import Role, mint_token
from stallkit.clock import MARKET_TZ
from stallkit.settings import DEV_JWT_SECRET

from allocation.adapters.keys import Keys
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.model import PriorityGroup, Vendor

BARE_KEY = "bench:bare:counter"


class _Body(BaseModel):
    stall_id: str
    date: date
    window_id: str


def bare_app() -> FastAPI:
    """A bare FastAPI endpoint doing one Redis round trip (the yardstick)."""
    app = FastAPI()
    redis = Redis.from_url(os.environ["REDIS_URL"])

    @app.post("/bare")
    async def bare(body: _Body) -> dict[str, int]:
        """Parse the same body as a booking, then one INCR."""
        return {"n": int(await redis.incr(BARE_KEY))}

    return app


@dataclass
class Result:
    """What one load run measured."""

    name: str
    requests: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        """One printable line."""
        return (
            f"{self.name:<26} {self.throughput:8.0f} req/s   p50 {self.percentile(0.50):6.1f} ms"
            f"   p99 {self.percentile(0.99):6.1f} ms   statuses {sorted(self.statuses.items())}"
        )


async def drive(
    name: str,
    url: str,
    requests: list[tuple[dict[str, str], dict[str, str]]],
    concurrency: int,
) -> Result:
    """Send ``requests`` (headers, json) to ``url`` from ``concurrency`` clients."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            for headers, body in queue:
                started = time.perf_counter()
                response = await client.post(url, json=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, len(requests), seconds, latencies, statuses)


async def _wait_ready(url: str, timeout: float = 60) -> None:
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


def _next_monday_9am() -> datetime:
    today = datetime.now(MARKET_TZ).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime(monday.year, monday.month, monday.day, 9, tzinfo=MARKET_TZ)


async def run(requests_total: int, concurrency: int) -> tuple[Result, Result]:
    """Start everything, measure the bare endpoint and the booking path, stop everything."""
    work = Path(tempfile.mkdtemp(prefix="alloc-bench-"))
    kafka_port, redis_port, alloc_port, bare_port = (procs.free_port() for _ in range(4))
    now = _next_monday_9am()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "STALL_CLOCK_OFFSET_SECONDS": str(now.timestamp() - time.time()),
        "STALL_LOG_LEVEL": "WARNING",
        "ALLOCATION_WEEKLY_CAP": "7",
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    children = [
        procs.spawn(procs.broker_args(kafka_port), log_path=work / "broker.log"),
        procs.spawn(procs.redis_args(redis_port, work, persistent=False), log_path=work / "r.log"),
    ]
    try:
        procs.wait_for_port(kafka_port)
        procs.wait_for_port(redis_port)
        children.append(
            procs.spawn(
                [*uvicorn, "allocation.app:app", "--port", str(alloc_port)],
                env=env,
                log_path=work / "allocation.log",
            )
        )
        children.append(
            procs.spawn(
                [*uvicorn, "--factory", "allocation.bench:bare_app", "--port", str(bare_port)],
                env=env,
                log_path=work / "bare.log",
            )
        )
        alloc = f"http://127.0.0.1:{alloc_port}"
        await _wait_ready(f"{alloc}/readyz")
        await _wait_ready(f"http://127.0.0.1:{bare_port}/docs")
        catalogue = load_catalogue()
        admin = mint_token(DEV_JWT_SECRET, sub="bench", role=Role.ADMIN, now=now, ttl_seconds=86400)
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.put(
                f"{alloc}/v1/admin/catalogue",
                json=catalogue.model_dump(mode="json"),
                headers={"Authorization": f"Bearer {admin}"},
            )
            response.raise_for_status()
        evening = {
            m.id
            for m in catalogue.markets
            if any(w.id == "evening" and len(w.days) == 7 for w in m.windows)
        }
        stalls = [s.id for s in catalogue.stalls if s.market_id in evening]
        days = [now.date() + timedelta(days=d) for d in range(7)]
        vendors = await _vendors(env["REDIS_URL"], len(stalls), now)
        tokens = [
            mint_token(DEV_JWT_SECRET, sub=v, role=Role.VENDOR, now=now, ttl_seconds=86400)
            for v in vendors
        ]
        bookings: list[tuple[dict[str, str], dict[str, str]]] = []
        for d, day in enumerate(days):
            for i, stall in enumerate(stalls):
                headers = {"Authorization": f"Bearer {tokens[i]}", "Idempotency-Key": f"b{d}-{i}"}
                bookings.append(
                    (headers, {"stall_id": stall, "date": day.isoformat(), "window_id": "evening"})
                )
        bookings = bookings[:requests_total]
        bare_requests = [(h, b) for h, b in bookings]
        warm = bookings[-concurrency:]
        await drive("warm-up", f"http://127.0.0.1:{bare_port}/bare", warm, concurrency)
        bare = await drive(
            "bare FastAPI + 1 Redis RTT",
            f"http://127.0.0.1:{bare_port}/bare",
            bare_requests,
            concurrency,
        )
        booking = await drive("POST /v1/bookings", f"{alloc}/v1/bookings", bookings, concurrency)
        return bare, booking
    finally:
        for child in reversed(children):
            procs.stop(child)


async def _vendors(redis_url: str, count: int, now: datetime) -> list[str]:
    redis = Redis.from_url(redis_url)
    store = VendorStore(redis, Keys(""))
    ids = []
    for i in range(count):
        vendor = Vendor(
            id=f"vd_bench{i:05d}",
            name=f"bench {i}",
            phone=f"138{i:08d}",
            priority_group=PriorityGroup.LOW_INCOME,
            categories=frozenset(Category),
            health_certificate_expires=date(2099, 1, 1),
            suspended_until=None,
            created_at=now,
        )
        await store.create(vendor, "not-a-login-account")
        ids.append(vendor.id)
    await redis.aclose()
    return ids


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    bare, booking = asyncio.run(run(args.requests, args.concurrency))
    print(f"\nallocation booking benchmark: {args.requests} requests, {args.concurrency} clients")
    print(bare.line())
    print(booking.line())
    ratio = booking.throughput / bare.throughput
    print(f"booking/bare throughput ratio: {ratio:.2f} (aim: >= 0.50)")
    created = booking.statuses.get(201, 0)
    print(
        f"bookings created: {created} of {booking.requests}; "
        f"booking throughput {created / booking.seconds:.0f} bookings/s"
    )


if __name__ == "__main__":
    main()
