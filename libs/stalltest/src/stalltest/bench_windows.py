"""Benchmark: how late the windows service publishes its timers, beside a bare sorted-set loop.

Starts its own redis-server (append-only file, ``appendfsync everysec``) on a free port, plans
the 8-day timeline of the seed catalogue's 35 markets (then 350 and 3,500 synthetic copies) into
the real timer store, and runs the real tick loop (:class:`windows.service_layer.ticker.Ticker`)
on a clock the benchmark moves: for each distinct due instant of the timeline it sets the clock
30 ms before it and waits until every timer due then is claimed. A timer's lateness is the real
time between its instant arriving on the clock and its claim (the claim writes the event into
the outbox; the relay to Kafka is not part of it). Jumping from instant to instant keeps bursts
apart as they are in a real day (all evening markets open at 17:30 together), without waiting
8 days. The baseline does the same with plain sorted sets: one per market plus an index, popped
by a loop with the same poll interval and concurrency and no service code (no envelopes, no Lua,
no outbox; one pipeline per 200 due markets). Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis

from contracts.seed import load_catalogue
from stallctl import procs
from stallkit.clock import Clock
from stalltest.benchtable import Figure, record
from windows.adapters.schedule_store import InMemoryScheduleStore
from windows.adapters.suspensions import SuspensionStore
from windows.adapters.timers import ClaimedTimer, TimerStore
from windows.config import WindowsSettings
from windows.domain.plan import Timer, local_midnight
from windows.domain.schedule import MarketSchedule, WindowSpec
from windows.domain.timeline import Timing, local_today
from windows.service_layer.ticker import Ticker
from windows.service_layer.timeline import Timeline

POLL_SECONDS = 0.02
LEAD_SECONDS = 0.03
CONCURRENCY = 16


def seed_schedules(copies: int, as_of: datetime) -> list[MarketSchedule]:
    """The seed catalogue's schedules, ``copies`` times (copies get new market ids)."""
    found = []
    for market in load_catalogue().markets:
        windows = tuple(
            WindowSpec(w.id, w.name_zh, w.name_en, tuple(sorted(w.days)), w.start, w.end)
            for w in market.windows
        )
        schedule = MarketSchedule(market.id, market.district.value, windows, as_of)
        found += [
            replace(schedule, market_id=market.id if n == 0 else f"{market.id}-{n:03d}")
            for n in range(copies)
        ]
    return found


@dataclass
class Result:
    """Lateness of one run, in real milliseconds."""

    markets: int
    timers: int
    instants: int
    late_ms: list[float]

    @property
    def p99_ms(self) -> float:
        """The 99th percentile of the lateness."""
        return statistics.quantiles(self.late_ms, n=100, method="inclusive")[98]

    def row(self, name: str) -> str:
        q = statistics.quantiles(self.late_ms, n=100, method="inclusive")
        return (
            f"{name:<8} {self.markets:>7} {self.timers:>8} {self.instants:>8} "
            f"{q[49]:>8.1f} {q[98]:>8.1f} {max(self.late_ms):>8.1f}"
        )


def set_clock(clock: Clock, when: datetime) -> float:
    """Make ``clock`` read ``when`` in LEAD_SECONDS; returns the real time it will."""
    clock.speed = 1.0
    clock.offset_seconds = 0.0
    clock.offset_seconds = when.timestamp() - LEAD_SECONDS - clock.timestamp()
    return time.time() + LEAD_SECONDS


async def drive(
    clock: Clock,
    instants: list[datetime],
    claimed_at: dict[str, float],
    due_ids: dict[datetime, list[str]],
    before_day: Callable[[datetime], Awaitable[None]],
) -> list[float]:
    """Jump the clock from instant to instant; collect each timer's lateness (real ms)."""
    late: list[float] = []
    day = None
    for instant in instants:
        if local_today(instant) != day:
            day = local_today(instant)
            await before_day(instant)
        arrives = set_clock(clock, instant)
        ids = due_ids[instant]
        deadline = time.monotonic() + 60
        while any(i not in claimed_at for i in ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"timers due at {instant} were not claimed")
            await asyncio.sleep(0.002)
        late += [max(0.0, claimed_at[i] - arrives) * 1000 for i in ids]
    return late


Due = dict[datetime, list[tuple[str, str]]]


async def service_run(
    redis: Redis, schedules: list[MarketSchedule], start: datetime
) -> tuple[Result, Due]:
    """The real planner, timer store and tick loop; also what was due when (for the bare run)."""
    await redis.flushdb()
    settings = WindowsSettings(tick_seconds=POLL_SECONDS, sweep_seconds=3600)
    clock = Clock()
    set_clock(clock, start)
    store = InMemoryScheduleStore()
    for schedule in schedules:
        await store.put(schedule)
    timers = TimerStore(redis, outbox_maxlen=10_000)
    timeline = Timeline(settings, clock, store, timers, SuspensionStore(redis, timers))
    await timeline.replan_all()
    pending: list[Timer] = []
    for schedule in schedules:
        pending += await timers.pending(schedule.market_id)
    due_ids: dict[datetime, list[str]] = {}
    rows: Due = {}
    for t in pending:
        due_ids.setdefault(t.due, []).append(t.id)
        rows.setdefault(t.due, []).append((t.market_id, t.id))
    claimed_at: dict[str, float] = {}

    def on_claim(timer: ClaimedTimer, timing: Timing, late_by: timedelta) -> None:
        claimed_at[timer.id] = time.time()

    ticker = Ticker(
        timeline, clock, poll_seconds=POLL_SECONDS, sweep_seconds=3600, observers=[on_claim]
    )

    async def before_day(instant: datetime) -> None:
        # The tick loop replans every market on a new local day (at midnight in a real day,
        # when no window is due): let it, before the day's first instant is measured.
        midnight = max(local_midnight(local_today(instant)), start)
        set_clock(clock, midnight + timedelta(seconds=1))
        deadline = time.monotonic() + 600
        while ticker.planned_day != local_today(instant):
            if time.monotonic() > deadline:
                raise TimeoutError("the tick loop did not plan the new day")
            await asyncio.sleep(0.01)

    ticker.start()
    try:
        late = await drive(clock, sorted(due_ids), claimed_at, due_ids, before_day)
    finally:
        await ticker.stop()
    return Result(len(schedules), len(pending), len(due_ids), late), rows


async def bare_run(redis: Redis, due: Due) -> list[float]:
    """The same due times in plain sorted sets, popped by a bare loop."""
    await redis.flushdb()
    index = "bare:index"
    per_market: dict[str, dict[str, float]] = {}
    for instant, rows in due.items():
        for market_id, timer_id in rows:
            per_market.setdefault(market_id, {})[timer_id] = instant.timestamp() * 1000
    for market_id, members in per_market.items():
        await redis.zadd(f"bare:{{{market_id}}}", members)
        await redis.zadd(index, {market_id: min(members.values())})
    clock = Clock()
    claimed_at: dict[str, float] = {}
    limit = asyncio.Semaphore(CONCURRENCY)

    async def pop(markets: list[str], now_ms: float) -> None:
        # One pipeline per chunk of due markets: their due members read and removed, and
        # the index set to each one's next due time.
        async with limit:
            async with redis.pipeline(transaction=False) as pipe:
                for m in markets:
                    key = f"bare:{{{m}}}"
                    pipe.zrangebyscore(key, "-inf", now_ms)
                    pipe.zremrangebyscore(key, "-inf", now_ms)
                    pipe.zrange(key, 0, 0, withscores=True)
                replies = await pipe.execute()
            stamp = time.time()
            async with redis.pipeline(transaction=False) as pipe:
                for n, m in enumerate(markets):
                    ids, _, first = replies[3 * n : 3 * n + 3]
                    for i in ids:
                        claimed_at[i.decode()] = stamp
                    if first:
                        pipe.zadd(index, {m: first[0][1]})
                    else:
                        pipe.zrem(index, m)
                await pipe.execute()

    async def loop() -> None:
        while True:
            now_ms = clock.timestamp() * 1000
            markets = [m.decode() for m in await redis.zrangebyscore(index, "-inf", now_ms)]
            chunks = [markets[i : i + 200] for i in range(0, len(markets), 200)]
            await asyncio.gather(*(pop(chunk, now_ms) for chunk in chunks))
            await asyncio.sleep(POLL_SECONDS)

    async def nothing(_: datetime) -> None:
        return None

    ids = {instant: [i for _, i in rows] for instant, rows in due.items()}
    task = asyncio.create_task(loop())
    try:
        return await drive(clock, sorted(ids), claimed_at, ids, nothing)
    finally:
        task.cancel()


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-windows-") as tmp:
        port = procs.free_port()
        proc = procs.spawn(
            procs.redis_args(port, Path(tmp), persistent=True), log_path=Path(tmp) / "redis.log"
        )
        redis = Redis.from_url(f"redis://127.0.0.1:{port}/0", max_connections=64)
        try:
            procs.wait_for_port(port, proc=proc)
            start = datetime.fromisoformat("2026-12-07T00:00:05+08:00")  # a Monday
            print(
                "windows timer lateness, real ms from a timer's instant on the clock to its claim "
                f"(poll {POLL_SECONDS * 1000:.0f} ms, {CONCURRENCY} claims at once, 8-day "
                "timeline, redis appendfsync everysec)"
            )
            print(
                f"{'':<8} {'markets':>7} {'timers':>8} {'instants':>8} "
                f"{'p50':>8} {'p99':>8} {'max':>8}"
            )
            for copies in sizes:
                schedules = seed_schedules(copies, start - timedelta(days=1))
                began = time.monotonic()
                service, due = await service_run(redis, schedules, start)
                bare = Result(
                    service.markets, service.timers, service.instants, await bare_run(redis, due)
                )
                print(service.row("service"))
                print(bare.row("bare"))
                record(Figure("windows", f"timer lateness p99, {service.markets} markets",
                              service.p99_ms, "ms", "bare", bare.p99_ms, aim=100,
                              aim_of="value", higher=False))  # fmt: skip
                print(f"{'':<8} ({time.monotonic() - began:.0f} s for this size)")
        finally:
            await redis.aclose()
            procs.stop(proc)


def cli() -> None:
    """``python -m stalltest.bench_windows [--sizes 1,10,100]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes",
        default="1,10,100",
        help="comma-separated multiples of the 35 seed markets to measure",
    )
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")]))


if __name__ == "__main__":
    cli()
