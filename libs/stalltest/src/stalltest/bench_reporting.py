"""Benchmark: reporting's consumer beside a bare Kafka consumer, and how long reports take.

Starts its own broker and redis-server (append-only file, ``appendfsync everysec``) on free
ports and serves the real reporting app (one uvicorn worker, own topic and key prefix) on the
scene's clock: Saturday 2026-11-21 10:00 local, the morning after the reported day.

1. Consumer. The seed catalogue (35 markets, 1,489 stalls) is published and applied first, so
   that every market's district is known; the service is stopped, then ``--events``
   ``booking.created`` envelopes (distinct stalls and days, keyed by market, headers as
   ``stallkit.messaging`` publishes them) go on the bookings topic as a backlog. A bare
   AIOKafkaConsumer (JSON decode only) reads them, then the service's own subscriber (group
   "reporting", a fresh uvicorn) resumes after the catalogue and is timed until its counters
   (the Redis hash behind ``GET /v1/stats``) hold every booking. The bare consumer's rate counts
   from its first fetch (it joins no group), the service's from the first booking seen
   counted: start-up and the group join are left out of both.

2. Reports. A full day (Friday 2026-11-20) in every market of the seed catalogue: for each of
   the day's windows, 70 % of the active stalls booked, of those bookings 10 % cancelled, 75 %
   checked in and the rest no-shows; per district 300 scans (mostly compliant, some with
   violations), 20 warnings and 15 cases (most handled, some sent on to closed and evaluated).
   Once reporting has counted every event (stats ``total``) and the reports hold them, each of
   ``GET /v1/reports/daily`` for Xiangzhou (JSON, CSV, XLSX) and for the city (JSON) is asked
   ``--requests`` times in a row by one httpx client, after ``--warmup`` requests.

Prints the figures and the aims; no thresholds. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.catalogue import Catalogue, District, Market, Stall
from contracts.envelope import Envelope, Event
from contracts.events import (
    BookingCancelled,
    BookingCheckedIn,
    BookingCreated,
    BookingNoShow,
    CaseClosed,
    CaseEvaluated,
    CaseHandled,
    CaseOpened,
    CaseState,
    InspectionEvent,
    MarketChanged,
    ScanOutcome,
    ScanRecorded,
    StallChanged,
    WarningIssued,
)
from contracts.seed import load_catalogue
from contracts.topics import BOOKINGS, TOPICS
from stallctl import procs
from stallkit.auth import Role
from stallkit.clock import local_datetime
from stallkit.messaging import ensure_topics, envelope_headers
from stallkit.settings import CommonSettings
from stalltest.bench_inspection import (
    ConsumerResult,
    bare_consumer,
    booking_created,
    bulk_bookings,
    wait_ready,
)
from stalltest.benchtable import Figure, record
from stalltest.tokens import dev_token

#: The reported day, and the service's clock: the next morning, 10:00 local.
DAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
DISTRICT = District.XIANGZHOU
BOOKED_SHARE = 0.7
CANCELLED_SHARE = 0.1
CHECKED_IN_SHARE = 0.75
SCANS_PER_DISTRICT = 300
WARNINGS_PER_DISTRICT = 20
CASES_PER_DISTRICT = 15
VIOLATIONS = ["litter", "out_of_line_box", "road_occupation", "overtime"]
#: How scans turn out: mostly compliant.
OUTCOMES = {
    ScanOutcome.COMPLIANT: 0.75,
    ScanOutcome.BOOKED_BUT_VACANT: 0.08,
    ScanOutcome.OCCUPIED_WITHOUT_BOOKING: 0.07,
    ScanOutcome.WRONG_VENDOR: 0.04,
    ScanOutcome.OVERTIME: 0.04,
    ScanOutcome.INVALID_CODE: 0.02,
}
BOOKING_CREATED = BookingCreated.event_type()
#: A wait for reporting gives up when its count has not moved for this long (start-up included).
STALLED_SECONDS = 90.0

Sent = tuple[Event, datetime]


# -- infrastructure -----------------------------------------------------------------------------


def source_of(event: Event) -> str:
    """The service that publishes ``event``: inspection its own, allocation the rest."""
    return "/services/inspection" if isinstance(event, InspectionEvent) else "/services/allocation"


async def publish(bootstrap: str, settings: CommonSettings, sent: Sequence[Sent]) -> float:
    """Publish each (event, time) as its producer does (envelope, headers, keyed by market)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    began = time.monotonic()
    try:
        futures = []
        for event, at in sent:
            envelope = Envelope.wrap(event, source=source_of(event), time=at)
            futures.append(
                await producer.send(
                    settings.topic(TOPICS[event.topic].name),
                    envelope.model_dump_json().encode(),
                    key=event.market_id.encode(),
                    headers=[(k, v.encode()) for k, v in envelope_headers(envelope).items()],
                )
            )
        await asyncio.gather(*futures)
        return time.monotonic() - began
    finally:
        await producer.stop()


def counts_key(settings: CommonSettings) -> str:
    """The hash of all events counted, by type (``RedisStatsStore``'s overall scope)."""
    return settings.key("rep", "{stats}", "counts")


async def counted(redis: Redis, settings: CommonSettings, event_type: str | None = None) -> int:
    """Events reporting counted under ``settings``: of ``event_type``, or all (stats total)."""
    if event_type is not None:
        return int(await redis.hget(counts_key(settings), event_type) or 0)
    return sum(int(v) for v in (await redis.hvals(counts_key(settings))))


async def until_counted(
    redis: Redis, settings: CommonSettings, count: int, child: subprocess.Popen[bytes]
) -> float:
    """Wait until reporting has counted ``count`` events in all; seconds waited."""
    began = time.monotonic()
    progress = Progress()
    while (held := await counted(redis, settings)) < count:
        progress.check(held, count, child)
        await asyncio.sleep(0.1)
    return time.monotonic() - began


class Progress:
    """Gives up when the count has not moved for ``STALLED_SECONDS`` or the service exited."""

    def __init__(self) -> None:
        self.held = -1
        self.since = time.monotonic()

    def check(self, held: int, count: int, child: subprocess.Popen[bytes]) -> None:
        """Raise if reporting exited or is stuck short of ``count``."""
        now = time.monotonic()
        if child.poll() is not None:
            raise RuntimeError(f"reporting exited ({child.returncode}); see its log")
        if held != self.held:
            self.held, self.since = held, now
        elif now - self.since > STALLED_SECONDS:
            raise TimeoutError(f"reporting stuck at {held} of {count} events")


@dataclass
class Stack:
    """The broker, redis-server and the services this run started."""

    work: Path
    bootstrap: str
    redis_url: str
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def settings(self, prefix: str) -> CommonSettings:
        """Settings under ``prefix`` (topics ``<prefix>.``, keys ``<prefix>:``)."""
        return CommonSettings.model_validate(
            {
                "kafka_bootstrap_servers": self.bootstrap,
                "redis_url": self.redis_url,
                "topic_prefix": f"{prefix}.",
                "redis_prefix": f"{prefix}:",
            }
        )

    def serve(self, settings: CommonSettings, port: int) -> subprocess.Popen[bytes]:
        """The reporting app under ``settings``' prefixes, on the scene's clock."""
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "STALL_TOPIC_PREFIX": settings.topic_prefix,
            "STALL_REDIS_PREFIX": settings.redis_prefix,
            "STALL_CLOCK_OFFSET_SECONDS": str(NOW.timestamp() - time.time()),
            "STALL_LOG_LEVEL": "WARNING",
        }
        child = procs.spawn(
            [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning",
             "reporting.app:app", "--port", str(port)],
            env=env,
            log_path=self.work / f"reporting-{port}.log",
        )  # fmt: skip
        self.children.append(child)
        return child


def catalogue_events(catalogue: Catalogue, at: datetime) -> list[Sent]:
    """Every market and stall of ``catalogue``, as changed at ``at``."""
    sent: list[Sent] = [(MarketChanged(market_id=m.id, market=m), at) for m in catalogue.markets]
    sent += [(StallChanged(market_id=s.market_id, stall=s), at) for s in catalogue.stalls]
    return sent


# -- 1. the consumer ----------------------------------------------------------------------------


async def service_consumer(
    stack: Stack, settings: CommonSettings, redis: Redis, count: int
) -> ConsumerResult:
    """The service's subscriber, resuming after the catalogue, until it counted ``count``."""
    began = time.monotonic()
    child = stack.serve(settings, procs.free_port())
    first: tuple[float, int] | None = None
    progress = Progress()
    try:
        while True:
            held = await counted(redis, settings, BOOKING_CREATED)
            now = time.monotonic()
            if first is None and held:
                first = (now, held)
            if held >= count:
                break
            progress.check(held, count, child)
            await asyncio.sleep(0.05)
    finally:
        procs.stop(child)
    assert first is not None
    return ConsumerResult("reporting subscriber (group reporting)", held, now - first[0],
                          first[1], now - began)  # fmt: skip


async def consumer(stack: Stack, args: argparse.Namespace, redis: Redis) -> None:
    """Catalogue applied first; then ``args.events`` bookings, bare consumer, then service."""
    settings = stack.settings("r1")
    await ensure_topics(stack.bootstrap, settings.topic_prefix)
    catalogue = load_catalogue()
    known = catalogue_events(catalogue, NOW - timedelta(days=30))
    child = stack.serve(settings, procs.free_port())
    await publish(stack.bootstrap, settings, known)
    await until_counted(redis, settings, len(known), child)
    procs.stop(child)  # its group resumes after the catalogue
    bookings: list[Sent] = [
        (e, NOW - timedelta(days=1)) for e in bulk_bookings(catalogue, args.events)
    ]
    published = await publish(stack.bootstrap, settings, bookings)
    print(
        f"\nreporting consumer: {len(bookings)} booking.created on {BOOKINGS.partitions} "
        f"partitions (published in {published:.1f} s), after the catalogue's {len(known)} "
        "events were applied; start-up and group join left out",
        flush=True,
    )
    print(f"{'':<38} {'events':>7} {'events/s':>9} {'total s':>9}", flush=True)
    bare = await bare_consumer(stack.bootstrap, settings.topic(BOOKINGS.name), len(bookings))
    print(bare.row(), flush=True)
    service = await service_consumer(stack, settings, redis, len(bookings))
    print(service.row(), flush=True)
    print(f"service/bare throughput ratio {service.rate / bare.rate:.3f} (aim: >= 0.50)")
    record(Figure("reporting", "reporting consumer", service.rate, "events/s",
                  "bare aiokafka", bare.rate, aim=0.5))  # fmt: skip


# -- 2. the reports -----------------------------------------------------------------------------


@dataclass
class Day:
    """A full day of events in every market, and what reports must find of it."""

    sent: list[Sent] = field(default_factory=list)
    #: District → bookings (created) and scans of the day.
    bookings: Counter[str] = field(default_factory=Counter)
    scans: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, event: Event, at: datetime) -> None:
        """One event, published at ``at``."""
        self.sent.append((event, at))
        self.kinds[type(event).__name__] += 1


def _moment_in_window(market: Market, rng: random.Random, day: date = DAY) -> datetime:
    """A random moment of one of ``market``'s windows on ``day``."""
    window = rng.choice([w for w in market.windows if day.isoweekday() in w.days])
    start = window.start.hour * 60 + window.start.minute
    end = window.end.hour * 60 + window.end.minute
    return local_datetime(day, start) + timedelta(minutes=rng.uniform(0, max(1, end - start)))


def id_suffix(day: date) -> str:
    """What the ids of ``day``'s vendors, scans, warnings and cases end with: nothing on
    ``DAY`` (its ids stay as they always were), else ``_<yyyymmdd>``, unique day by day."""
    return "" if day == DAY else f"_{day:%Y%m%d}"


def full_day(
    catalogue: Catalogue, rng: random.Random, *, day: date = DAY, now: datetime = NOW
) -> Day:
    """Bookings of every window of ``day``, and each district's scans, warnings and cases.

    ``now`` is the morning after, when reports are asked for: cases are handled, closed and
    evaluated before it. Booking ids carry the date; the other ids end with :func:`id_suffix`.
    """
    out = Day()
    sfx = id_suffix(day)
    stalls: dict[str, list[Stall]] = {}
    for stall in catalogue.stalls:
        if stall.active:
            stalls.setdefault(stall.market_id, []).append(stall)
    active = {m: [s.id for s in mine] for m, mine in stalls.items()}
    n = 0
    for market in catalogue.markets:
        district = market.district.value
        for window in market.windows:
            if day.isoweekday() not in window.days:
                continue
            for stall in stalls.get(market.id, []):
                if rng.random() >= BOOKED_SHARE:
                    continue
                n += 1
                vendor = f"vd_day{n:05d}{sfx}"
                created = booking_created(
                    market.id, stall.id, stall.category.value, vendor, window, day
                )
                created = created.model_copy(update={"priority": rng.random() < 0.2})
                out.add(created, created.starts_at - timedelta(hours=rng.uniform(2, 72)))
                out.bookings[district] += 1
                common = {
                    "market_id": market.id,
                    "booking_id": created.booking_id,
                    "vendor_id": vendor,
                    "stall_id": stall.id,
                    "date": day,
                    "window_id": window.id,
                }
                fate = rng.random()
                if fate < CANCELLED_SHARE:
                    late = rng.random() < 0.3
                    at = created.starts_at - timedelta(hours=rng.uniform(0.2, 1) if late else 6)
                    out.add(BookingCancelled(**common, late=late), at)
                elif fate < CANCELLED_SHARE + CHECKED_IN_SHARE:
                    at = created.starts_at + timedelta(minutes=rng.uniform(-10, 45))
                    out.add(BookingCheckedIn(**common, checked_in_at=at), at)
                else:
                    at = created.starts_at + timedelta(minutes=30)
                    out.add(BookingNoShow(**common, no_shows_in_period=1), at)
    by_district: dict[District, list[Market]] = {}
    for market in catalogue.markets:
        if any(day.isoweekday() in w.days for w in market.windows) and active.get(market.id):
            by_district.setdefault(market.district, []).append(market)
    outcomes, weights = list(OUTCOMES), list(OUTCOMES.values())
    case = 0
    for district, markets in sorted(by_district.items()):
        sizes = [len(active[m.id]) for m in markets]
        for k in range(SCANS_PER_DISTRICT):
            market = rng.choices(markets, sizes)[0]
            observed = _moment_in_window(market, rng, day)
            outcome = rng.choices(outcomes, weights)[0]
            violations = []
            if outcome is not ScanOutcome.COMPLIANT and rng.random() < 0.4:
                violations = [rng.choice(VIOLATIONS)]
            scan = ScanRecorded(
                market_id=market.id,
                district=district,
                scan_id=f"sc_{district.value}_{k:04d}{sfx}",
                stall_id=rng.choice(active[market.id]),
                outcome=outcome,
                violations=violations,
                patrol_id=f"patrol-{district.value}-{k % 8}",
                observed_at=observed,
            )
            out.add(scan, observed + timedelta(seconds=rng.uniform(0.2, 5)))
            out.scans[district.value] += 1
        for k in range(WARNINGS_PER_DISTRICT):
            market = rng.choices(markets, sizes)[0]
            at = _moment_in_window(market, rng, day)
            warning = WarningIssued(
                market_id=market.id,
                district=district,
                warning_id=f"wn_{district.value}_{k:03d}{sfx}",
                subject_id=f"vd_w{district.value}{k}{sfx}",
                violation=rng.choice(VIOLATIONS),
                stall_id=rng.choice(active[market.id]),
            )
            out.add(warning, at)
        for _ in range(CASES_PER_DISTRICT):
            case += 1
            market = rng.choices(markets, sizes)[0]
            opened = _moment_in_window(market, rng, day)
            deadline = opened + timedelta(hours=rng.choice([2, 24, 48]))
            ids = {
                "market_id": market.id,
                "district": district,
                "case_id": f"cs_day{case:04d}{sfx}",
            }
            out.add(
                CaseOpened(
                    **ids,
                    violation=rng.choice(VIOLATIONS),
                    deadline=deadline,
                    penalty_min_cny=50,
                    penalty_max_cny=500,
                    stall_id=rng.choice(active[market.id]),
                ),
                opened,
            )
            if rng.random() < 0.3:
                continue  # still open
            step = {"actor_id": f"district-{district.value}", "note": ""}
            handled = min(opened + timedelta(hours=rng.uniform(0.5, 8)), now - timedelta(hours=1))
            out.add(
                CaseHandled(
                    **ids, **step, from_state=CaseState.DISPATCHED, to_state=CaseState.HANDLED,
                    on_time=handled <= deadline,
                ),
                handled,
            )  # fmt: skip
            if rng.random() < 0.6:
                closed = handled + (now - handled) * 0.5
                out.add(
                    CaseClosed(
                        **ids, **step, from_state=CaseState.VERIFIED, to_state=CaseState.CLOSED,
                        on_time=closed <= deadline,
                    ),
                    closed,
                )  # fmt: skip
                if rng.random() < 0.7:
                    out.add(
                        CaseEvaluated(**ids, score=rng.randint(1, 5), by_role="vendor"),
                        closed + (now - closed) * 0.5,
                    )
    out.sent.sort(key=lambda s: s[1])  # in the order they happened (by market, on each topic)
    return out


def percentiles(latencies: list[float]) -> tuple[float, float, float, float]:
    """p50, p90, p99 and max of ``latencies``."""
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return q[49], q[89], q[98], max(latencies)


@dataclass
class Timed:
    """One kind of report asked for again and again."""

    name: str
    token: str
    params: dict[str, str]
    accept: str | None = None


async def time_report(
    client: httpx.AsyncClient, asked: Timed, warmup: int, requests: int
) -> tuple[list[float], httpx.Response]:
    """Ask ``requests`` times in a row (after ``warmup``); the latencies (ms), the last answer."""
    headers = {"Authorization": f"Bearer {asked.token}"}
    if asked.accept:
        headers["Accept"] = asked.accept
    latencies: list[float] = []
    response = None
    for n in range(warmup + requests):
        sent = time.perf_counter()
        response = await client.get("/v1/reports/daily", params=asked.params, headers=headers)
        took = (time.perf_counter() - sent) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{asked.name}: {response.status_code} {response.text[:300]}")
        if n >= warmup:
            latencies.append(took)
    assert response is not None
    return latencies, response


async def reports(stack: Stack, args: argparse.Namespace, redis: Redis) -> None:
    """Publish a full day in every market, wait until it is counted, time the reports."""
    settings = stack.settings("r2")
    await ensure_topics(stack.bootstrap, settings.topic_prefix)
    catalogue = load_catalogue()
    port = procs.free_port()
    child = stack.serve(settings, port)
    url = f"http://127.0.0.1:{port}"
    known = catalogue_events(catalogue, NOW - timedelta(days=30))
    await publish(stack.bootstrap, settings, known)
    await wait_ready(f"{url}/readyz")
    await until_counted(redis, settings, len(known), child)
    day = full_day(catalogue, random.Random(20261120))
    began = time.monotonic()
    await publish(stack.bootstrap, settings, day.sent)
    await until_counted(redis, settings, len(known) + len(day.sent), child)
    applied = time.monotonic() - began
    district = dev_token(Role.DISTRICT, "d-1", district=DISTRICT.value, now=NOW, ttl_seconds=86400)
    admin = dev_token(Role.ADMIN, "admin-1", now=NOW, ttl_seconds=86400)
    on = {"date": DAY.isoformat()}
    mine = {"district": DISTRICT.value, **on}
    runs = [
        Timed(f"{DISTRICT.value}, JSON", district, mine),
        Timed("city, JSON", admin, on),
        Timed(f"{DISTRICT.value}, CSV", district, mine, accept="text/csv"),
        Timed(f"{DISTRICT.value}, XLSX", district, {**mine, "format": "xlsx"}),
    ]
    expected = {
        "city": (sum(day.bookings.values()), sum(day.scans.values())),
        DISTRICT.value: (day.bookings[DISTRICT.value], day.scans[DISTRICT.value]),
    }
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        # Counted is not yet recorded: a counted event's facts are written right after.
        headers = {"Authorization": f"Bearer {admin}"}
        totals: dict[str, dict[str, int]] = {}
        deadline = time.monotonic() + 10
        for name, params in (("city", on), (DISTRICT.value, mine)):
            while True:
                response = await client.get("/v1/reports/daily", params=params, headers=headers)
                response.raise_for_status()
                totals[name] = response.json()["total"]
                found = (totals[name]["bookings"], totals[name]["scans"])
                if found == expected[name] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        markets = {
            "city": len(catalogue.markets),
            DISTRICT.value: sum(1 for m in catalogue.markets if m.district is DISTRICT),
        }
        kinds = ", ".join(f"{n} {k}" for k, n in day.kinds.most_common())
        print(
            f"\nreports of {DAY.isoformat()} ({DAY.strftime('%A')}), every market of the seed "
            f"catalogue: {len(day.sent)} events ({kinds}) counted {applied:.1f} s after "
            f"publishing began; {args.requests} requests in a row per row, one httpx client, "
            f"after {args.warmup} warm-ups",
            flush=True,
        )
        print(
            f"{'GET /v1/reports/daily':<22} {'markets':>7} {'bookings':>8} {'scans':>6} "
            f"{'bytes':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}",
            flush=True,
        )
        for run in runs:
            latencies, response = await time_report(client, run, args.warmup, args.requests)
            scope = "city" if run.name.startswith("city") else DISTRICT.value
            p50, p90, p99, peak = percentiles(latencies)
            print(
                f"{run.name:<22} {markets[scope]:>7} {totals[scope]['bookings']:>8} "
                f"{totals[scope]['scans']:>6} {len(response.content):>7} {p50:>7.1f} "
                f"{p90:>7.1f} {p99:>7.1f} {peak:>7.1f}",
                flush=True,
            )
    wrong = [
        f"{name}: bookings, scans {totals[name]['bookings']}, {totals[name]['scans']} "
        f"(published {want[0]}, {want[1]})"
        for name, want in expected.items()
        if (totals[name]["bookings"], totals[name]["scans"]) != want
    ]
    print(
        "the reports' bookings and scans equal what was published"
        if not wrong
        else "MISMATCH " + "; ".join(wrong)
    )


# -- main ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    """Start the broker and redis-server, run both parts, stop everything."""
    work = Path(tempfile.mkdtemp(prefix="bench-reporting-"))
    kafka_port, redis_port = procs.free_port(), procs.free_port()
    stack = Stack(work, f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0")
    stack.children += [
        procs.spawn(procs.broker_args(kafka_port), log_path=work / "broker.log"),
        procs.spawn(procs.redis_args(redis_port, work, persistent=True), log_path=work / "r.log"),
    ]
    redis = Redis.from_url(stack.redis_url)
    try:
        procs.wait_for_port(kafka_port, proc=stack.children[0])
        procs.wait_for_port(redis_port, proc=stack.children[1])
        if args.events:
            await consumer(stack, args, redis)
        if args.requests:
            await reports(stack, args, redis)
    finally:
        await redis.aclose()
        for child in reversed(stack.children):
            procs.stop(child)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m stalltest.bench_reporting [--events 5000] [--requests 200] ...``."""
    parser = argparse.ArgumentParser(description="reporting consumer and report benchmark")
    parser.add_argument(
        "--events", type=int, default=5_000, help="booking.created events (0: skip)"
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per kind of report (0: skip)"
    )
    parser.add_argument("--warmup", type=int, default=5, help="warm-up requests per kind")
    args = parser.parse_args(argv)
    if args.events < 0 or args.warmup < 0 or args.requests < 0 or 0 < args.requests < 2:
        parser.error("--events and --warmup must not be negative, --requests 0 or at least 2")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
