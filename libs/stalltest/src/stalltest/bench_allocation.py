"""Benchmark: booking throughput and latency beside a bare FastAPI + one-Redis-round-trip endpoint.

Starts its own broker and redis-server on free ports, the allocation service and a bare endpoint
as separate uvicorn processes (one worker each), loads the seed catalogue, creates vendors, then
drives each with wrk at the same number of concurrent connections, in the same run, and prints
requests/s, p50/p99 latency and the ratio; then offers both a constant load of half the booking
path's capacity, open loop, and prints the latencies at that load. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from redis.asyncio import Redis

from allocation.adapters.keys import Keys
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.model import PriorityGroup, Vendor
from contracts.catalogue import Catalogue, Category
from contracts.seed import load_catalogue
from stallctl import procs
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ
from stallkit.service import NO_OPENTELEMETRY
from stalltest.benchtable import Figure, record
from stalltest.openloop import OpenLoopResult, Request, open_loop
from stalltest.tokens import dev_token

BARE_KEY = "bench:bare:counter"
#: Bookable days ahead: enough distinct (stall, day) pairs that every request can succeed.
HORIZON_DAYS = 34
#: Of those, the days the booking path's warm-up books.
WARM_UP_DAYS = 4
#: And the days the open-loop run books (the last ones).
OPEN_LOOP_DAYS = 6
#: The open-loop runs offer this share of the booking path's measured capacity.
OPEN_LOOP_SHARE = 0.5

WRK_SCRIPT = """
local requests = {}
created, rejected, failed = 0, 0, 0
local n = 0

local key_prefix = "k"

function init(args)
  -- Each request file is its own run: its name keeps the Idempotency-Keys of runs apart.
  key_prefix = args[1]:match("([^/]+)%.tsv$") or "k"
  for line in io.lines(args[1]) do
    local token, body = line:match("^(%S+)\\t(.*)$")
    requests[#requests + 1] = {token, body}
  end
end

function request()
  n = n + 1
  local r = requests[((n - 1) % #requests) + 1]
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer " .. r[1],
    ["Idempotency-Key"] = key_prefix .. "-" .. n,
    ["Content-Type"] = "application/json",
  }, r[2])
end

function response(status, headers, body)
  if status < 300 then created = created + 1
  elseif status < 500 then rejected = rejected + 1
  else failed = failed + 1 end
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function done(summary, latency, requests_)
  local c, r, f = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); r = r + t:get("rejected"); f = f + t:get("failed")
  end
  io.write(string.format("RESULT %d %d %d %d %d %.3f %.3f\\n",
    summary.requests, summary.duration, c, r, f,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


class _Body(BaseModel):
    stall_id: str
    date: date
    window_id: str


def bare_app() -> FastAPI:
    """A bare FastAPI endpoint doing one Redis round trip (the yardstick), configured as the
    services are (no OpenTelemetry hooks)."""
    app = FastAPI(telemetry=NO_OPENTELEMETRY)
    redis = Redis.from_url(os.environ["REDIS_URL"])

    @app.post("/bare")
    async def bare(body: _Body) -> dict[str, int]:
        """Parse the same body as a booking, then one INCR."""
        return {"n": int(await redis.incr(BARE_KEY))}

    return app


@dataclass
class Result:
    """What one wrk run measured."""

    name: str
    requests: int
    seconds: float
    succeeded: int
    rejected: int
    failed: int
    p50_ms: float
    p99_ms: float

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    def line(self) -> str:
        """One printable line."""
        return (
            f"{self.name:<28} {self.throughput:8.0f} req/s   p50 {self.p50_ms:6.1f} ms"
            f"   p99 {self.p99_ms:6.1f} ms   2xx {self.succeeded}  4xx {self.rejected}"
            f"  5xx {self.failed}"
        )


def wrk(name: str, url: str, request_file: Path, *, seconds: int, concurrency: int) -> Result:
    """Drive ``url`` with wrk (one thread, ``concurrency`` connections) for ``seconds``."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is missing: `make bench` installs it (apt-get install wrk)")
    script = request_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        [binary, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s",
         "-s", str(script), url, "--", str(request_file)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    total, micros, ok, rejected, failed = (int(x) for x in fields[:5])
    return Result(
        name, total, micros / 1e6, ok, rejected, failed, float(fields[5]), float(fields[6])
    )


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


async def _load_catalogue(url: str, now: datetime) -> None:
    admin = dev_token(Role.ADMIN, "bench", now=now, ttl_seconds=86400)
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.put(
            f"{url}/v1/admin/catalogue",
            json=load_catalogue().model_dump(mode="json"),
            headers={"Authorization": f"Bearer {admin}"},
        )
        response.raise_for_status()


def _next_monday_9am() -> datetime:
    today = datetime.now(MARKET_TZ).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime(monday.year, monday.month, monday.day, 9, tzinfo=MARKET_TZ)


async def _vendors(redis_url: str, count: int, now: datetime, prefix: str = "") -> list[str]:
    redis = Redis.from_url(redis_url)
    store = VendorStore(redis, Keys(prefix))
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


@dataclass
class Measured:
    """Everything one run measured."""

    bare: Result
    bookings: list[Result]
    applications: Result
    #: Open loop at half the booking path's capacity: the bare endpoint, then the bookings.
    bare_open: OpenLoopResult
    bookings_open: OpenLoopResult


async def run(seconds: int, concurrency: int, fsync_policies: list[str]) -> Measured:
    """Start everything, measure the bare endpoint, the booking and the application paths.

    Redis keeps an append-only file as in production; the booking path is measured once per
    ``appendfsync`` policy (switched with CONFIG SET between runs, each run on its own days),
    first come (``ALLOCATION_LOTTERY=false``: with the lottery on, a window is booked first come
    only after its draw, and the booking script is the same but for one read of the draw's
    state). The application path (the lottery on, its own key prefix) is measured last, under
    the last policy, on the windows whose applications are open.

    Then latency at a fixed offered load: half the booking path's measured capacity (under the
    last policy), open loop (:mod:`stalltest.openloop`), against the bare endpoint and the
    booking path in turn, each booking on days of its own.
    """
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
        "ALLOCATION_PRIORITY_HORIZON_DAYS": str(HORIZON_DAYS),
        "ALLOCATION_LOTTERY": "false",
        # wrk cycles through 1,237 vendors at ~1,000 requests/s: each makes ~50 attempts a
        # minute, past the per-vendor limit (the limit's count runs in the script either way).
        "ALLOCATION_BOOKING_ATTEMPTS_PER_MINUTE": "1000000",
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    children = [
        procs.spawn(procs.broker_args(kafka_port), log_path=work / "broker.log"),
        procs.spawn(procs.redis_args(redis_port, work, persistent=True), log_path=work / "r.log"),
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
                [
                    *uvicorn,
                    "--factory",
                    "stalltest.bench_allocation:bare_app",
                    "--port",
                    str(bare_port),
                ],
                env=env,
                log_path=work / "bare.log",
            )
        )
        alloc = f"http://127.0.0.1:{alloc_port}"
        await _wait_ready(f"{alloc}/readyz")
        await _wait_ready(f"http://127.0.0.1:{bare_port}/docs")
        catalogue = load_catalogue()
        await _load_catalogue(alloc, now)
        daily_evening = {
            m.id
            for m in catalogue.markets
            if any(w.id == "evening" and len(w.days) == 7 for w in m.windows)
        }
        stalls = [s.id for s in catalogue.stalls if s.market_id in daily_evening]
        days = [now.date() + timedelta(days=d) for d in range(HORIZON_DAYS)]
        vendors = await _vendors(env["REDIS_URL"], len(stalls), now)
        tokens = [dev_token(Role.VENDOR, v, now=now, ttl_seconds=86400) for v in vendors]
        # Vendor i books stall i, day after day: every request can succeed, none overlap.
        # Each measured run gets its own days, so no run meets another's bookings; the first
        # days are the booking path's warm-up (as the bare endpoint gets one): a vendor's token
        # is checked once and then reused, as it is by a signed-in vendor's phone.
        warm_days, days = days[:WARM_UP_DAYS], days[WARM_UP_DAYS:]
        open_days, days = days[-OPEN_LOOP_DAYS:], days[:-OPEN_LOOP_DAYS]
        per_run = len(days) // len(fsync_policies)
        request_files = []
        for run_index in range(len(fsync_policies)):
            run_days = days[run_index * per_run : (run_index + 1) * per_run]
            request_files.append(_booking_requests(work / f"requests-{run_index}.tsv",
                                                   run_days, stalls, tokens))  # fmt: skip
        warm_file = _booking_requests(work / "warm-up.tsv", warm_days, stalls, tokens)
        bare_url = f"http://127.0.0.1:{bare_port}/bare"
        wrk("warm-up", bare_url, request_files[0], seconds=2, concurrency=concurrency)
        bare = wrk("bare FastAPI + 1 Redis RTT", bare_url, request_files[0],
                   seconds=seconds, concurrency=concurrency)  # fmt: skip
        wrk("warm-up", f"{alloc}/v1/bookings", warm_file, seconds=2, concurrency=concurrency)
        bookings = []
        redis = Redis.from_url(env["REDIS_URL"])
        try:
            for policy, request_file in zip(fsync_policies, request_files, strict=True):
                await redis.config_set("appendfsync", policy)
                bookings.append(
                    wrk(
                        f"POST /v1/bookings ({policy})",
                        f"{alloc}/v1/bookings",
                        request_file,
                        seconds=seconds,
                        concurrency=concurrency,
                    )
                )
        finally:
            await redis.aclose()
        rate = OPEN_LOOP_SHARE * bookings[-1].throughput
        open_requests = _open_loop_requests(open_days, stalls, tokens)
        bare_open = await open_loop(
            "bare, open loop", bare_url, open_requests, rate=rate, seconds=seconds
        )
        bookings_open = await open_loop(
            "POST /v1/bookings, open loop",
            f"{alloc}/v1/bookings",
            open_requests,
            rate=rate,
            seconds=seconds,
        )
        applications = await _applications(
            env, work, children, now, stalls, catalogue_markets(catalogue), concurrency, seconds
        )
        return Measured(bare, bookings, applications, bare_open, bookings_open)
    finally:
        for child in reversed(children):
            procs.stop(child)


def _booking_requests(path: Path, days: list[date], stalls: list[str], tokens: list[str]) -> Path:
    """A wrk request file: vendor i books stall i's evening on each of ``days``."""
    with path.open("w") as out:
        for day in days:
            for i, stall in enumerate(stalls):
                body = {"stall_id": stall, "date": day.isoformat(), "window_id": "evening"}
                out.write(f"{tokens[i]}\t{json.dumps(body)}\n")
    return path


def _open_loop_requests(
    days: list[date], stalls: list[str], tokens: list[str]
) -> Callable[[int], Request]:
    """Request ``i`` of the open-loop run: vendor i books stall i's evening, day after day."""
    bodies = [
        (tokens[i], json.dumps({"stall_id": s, "date": d.isoformat(), "window_id": "evening"}))
        for d in days
        for i, s in enumerate(stalls)
    ]

    def request(index: int) -> Request:
        token, body = bodies[index % len(bodies)]
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"open-{index}"}
        return headers, body.encode()

    return request


def catalogue_markets(catalogue: Catalogue) -> dict[str, str]:
    """Stall id -> market id."""
    return {s.id: s.market_id for s in catalogue.stalls}


async def _applications(
    env: dict[str, str],
    work: Path,
    children: list[subprocess.Popen[bytes]],
    now: datetime,
    stalls: list[str],
    market_of: dict[str, str],
    concurrency: int,
    seconds: int,
) -> Result:
    """``POST /v1/applications`` with the lottery on: vendor i applies for stall i's evening on
    each day whose applications are open (Wednesday to next Monday from Monday 09:00); applying
    again to a window changes the ranking, so every request can succeed."""
    port = procs.free_port()
    lottery_env = {**env, "ALLOCATION_LOTTERY": "true", "STALL_REDIS_PREFIX": "lottery:"}
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    children.append(
        procs.spawn(
            [*uvicorn, "allocation.app:app", "--port", str(port)],
            env=lottery_env,
            log_path=work / "allocation-lottery.log",
        )
    )
    url = f"http://127.0.0.1:{port}"
    await _wait_ready(f"{url}/readyz")
    await _load_catalogue(url, now)
    vendors = await _vendors(env["REDIS_URL"], len(stalls), now, prefix="lottery:")
    tokens = [dev_token(Role.VENDOR, v, now=now, ttl_seconds=86400) for v in vendors]
    request_file, warm_file = work / "applications.tsv", work / "applications-warm-up.tsv"
    opened: set[tuple[str, date]] = set()
    with request_file.open("w") as out, warm_file.open("w") as warm:
        for offset in range(2, 8):
            day = (now + timedelta(days=offset)).date()
            for i, stall in enumerate(stalls):
                body = {"market_id": market_of[stall], "date": day.isoformat(),
                        "window_id": "evening", "stall_ids": [stall]}  # fmt: skip
                line = f"{tokens[i]}\t{json.dumps(body)}\n"
                out.write(line)
                if (market_of[stall], day) not in opened:  # the window's first application
                    opened.add((market_of[stall], day))
                    warm.write(line)
    # The warm-up applies once to every window: its draw is scheduled then (seed drawn,
    # commitment published), once in the window's life, as when its applications open.
    wrk("warm-up", f"{url}/v1/applications", warm_file, seconds=2, concurrency=concurrency)
    return wrk(
        "POST /v1/applications",
        f"{url}/v1/applications",
        request_file,
        seconds=seconds,
        concurrency=concurrency,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description="allocation booking benchmark")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent connections")
    parser.add_argument(
        "--fsync",
        default="everysec,always",
        help="comma-separated Redis appendfsync policies to measure the booking path under",
    )
    args = parser.parse_args(argv)
    policies = [p.strip() for p in args.fsync.split(",") if p.strip()]
    if not policies or not set(policies) <= {"no", "everysec", "always"}:
        parser.error("--fsync takes no, everysec and/or always")
    measured = asyncio.run(run(args.seconds, args.concurrency, policies))
    bare, bookings, applications = measured.bare, measured.bookings, measured.applications
    print(
        f"\nallocation booking benchmark: wrk, {args.concurrency} connections, "
        f"{args.seconds} s each, one uvicorn worker each, same machine, same run, "
        "Redis with an append-only file"
    )
    print(bare.line())
    for booking in bookings:
        print(booking.line())
    for policy, booking in zip(policies, bookings, strict=True):
        ratio = booking.throughput / bare.throughput
        record(Figure("allocation", f"POST /v1/bookings ({policy})", booking.throughput,
                      "req/s", "bare", bare.throughput, aim=0.5))  # fmt: skip
        print(
            f"appendfsync {policy:<8}: {booking.succeeded / booking.seconds:.0f} bookings/s, "
            f"booking/bare throughput ratio {ratio:.2f} (aim: >= 0.50)"
        )
    print(applications.line())
    record(Figure("allocation", "POST /v1/applications", applications.throughput, "req/s",
                  "bookings", bookings[-1].throughput, aim=1.0))  # fmt: skip
    print(
        f"applications (lottery, appendfsync {policies[-1]}): "
        f"{applications.succeeded / applications.seconds:.0f} applications/s, "
        f"application/bare ratio {applications.throughput / bare.throughput:.2f}, "
        f"application/booking ratio {applications.throughput / bookings[-1].throughput:.2f} "
        "(aim: >= 1.00)"
    )
    bare_open, bookings_open = measured.bare_open, measured.bookings_open
    print(
        f"\nopen loop (a constant {bookings_open.offered_rate:.0f} req/s, half the booking "
        f"path's capacity under appendfsync {policies[-1]}; latency from when each request "
        f"was due), {args.seconds} s each:"
    )
    print(bare_open.line())
    print(bookings_open.line())
    record(Figure("allocation",
                  f"POST /v1/bookings p99, open loop {bookings_open.offered_rate:.0f}/s",
                  bookings_open.p99_ms, "ms", "bare p99, same load", bare_open.p99_ms,
                  aim=50, aim_of="value", higher=False))  # fmt: skip
    print(f"booking p99 at a fixed load: {bookings_open.p99_ms:.1f} ms (aim: <= 50 ms)")


if __name__ == "__main__":
    main()
