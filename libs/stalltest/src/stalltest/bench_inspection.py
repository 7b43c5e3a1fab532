"""Benchmark: inspection's scan latency under 50 patrols, and its projection consumer beside a
bare Kafka consumer.

Starts its own broker and redis-server (append-only file, ``appendfsync everysec``) on free
ports and serves the real inspection app (one uvicorn worker, own topic and key prefix) on the
scene's clock: Friday 2026-11-20 18:00 local, when the seed catalogue's evening markets are open.

1. Scans. The seed catalogue (35 markets, 1,489 stalls) and bookings of 70 % of the open
   markets' stalls for the running window are published and projected first. Then
   ``--concurrency`` patrols post ``POST /v1/scans``: each its own token (its district), a
   fresh Idempotency-Key per request, the signed code of a random stall of its district, the
   booked vendor present or the stall empty, and 10 % of the scans with "litter" (warnings,
   then cases, are written). Three runs, each after ``--warmup`` seconds:

   - wrk, one connection per patrol, closed loop (each posts again as soon as it is
     answered): the service's throughput, and its latency when saturated (queueing included);
   - the same with one httpx AsyncClient per patrol in this process (a Python client shares
     the 2 cores with the service: compare with wrk to see the client's cost);
   - paced: one httpx client per patrol, each scanning about once every ``--pace`` seconds,
     the latency a patrol sees at a realistic load;
   - open loop: a constant rate of half the wrk run's throughput whatever the answers
     (:mod:`stalltest.openloop`), latency counted from when each scan was due.

2. Projection. ``--events`` ``booking.created`` envelopes (distinct stalls and days, keyed by
   market, headers as ``stallkit.messaging`` publishes them) on the bookings topic of a fresh
   prefix, read from the beginning by a bare AIOKafkaConsumer (JSON decode only) and then by
   the service's own subscriber (group "inspection", a fresh uvicorn), timed until the
   projection in Redis holds all of them. The bare consumer's rate counts from its first fetch
   (it joins no group), the service's from the first event seen projected: start-up and the
   group join are left out of both.

Run with ``make bench`` (after the allocation and windows benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from contracts.catalogue import Catalogue, Market, MarketWindow
from contracts.envelope import Envelope, Event
from contracts.events import BookingCreated, MarketChanged, StallChanged
from contracts.seed import load_catalogue
from contracts.topics import BOOKINGS, TOPICS
from inspection.config import InspectionSettings
from stallctl import procs
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ, local_datetime
from stallkit.messaging import ensure_topics, envelope_headers
from stalltest.benchtable import Figure, record
from stalltest.inspection import FRIDAY, NOW, code
from stalltest.openloop import Request, open_loop
from stalltest.tokens import dev_token

#: Share of an open market's stalls booked for the running window.
BOOKED_SHARE = 0.7
#: Share of scans that record "litter" (at a booked stall, against the vendor there).
LITTER_SHARE = 0.1
#: Requests prepared per patrol (cycled; every request still gets its own Idempotency-Key).
REQUESTS_PER_PATROL = 200
#: The open-loop run offers this share of the wrk run's throughput, and its p99 aim.
OPEN_LOOP_SHARE = 0.5
OPEN_LOOP_AIM_MS = 50
SOURCE = "/services/allocation"

WRK_SCRIPT = """
local requests = {}
ok, rejected, failed = 0, 0, 0
local n = 0
local key_prefix = "k"

function init(args)
  key_prefix = args[2]
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
  if status < 300 then ok = ok + 1
  elseif status < 500 then rejected = rejected + 1
  else failed = failed + 1 end
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function done(summary, latency, requests_)
  local o, r, f = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); r = r + t:get("rejected"); f = f + t:get("failed")
  end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %.3f %.3f %.3f %.3f\\n",
    summary.requests, summary.duration, o, r, f,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


# -- the scene ----------------------------------------------------------------------------------


def window_open_at(market: Market, at: datetime) -> MarketWindow | None:
    """The market's window running at ``at``, if any."""
    local = at.astimezone(MARKET_TZ)
    for window in market.windows:
        if local.isoweekday() in window.days and window.start <= local.time() < window.end:
            return window
    return None


def booking_created(
    market_id: str, stall_id: str, category: str, vendor_id: str, window: MarketWindow, day: date
) -> BookingCreated:
    """A booking of ``stall_id`` for ``window`` on ``day``, as allocation publishes it."""
    return BookingCreated.model_validate(
        {
            "market_id": market_id,
            "booking_id": f"bk_{stall_id}_{window.id}_{day.isoformat()}",
            "vendor_id": vendor_id,
            "stall_id": stall_id,
            "date": day,
            "window_id": window.id,
            "category": category,
            "starts_at": local_datetime(day, window.start.hour * 60 + window.start.minute),
            "ends_at": local_datetime(day, window.end.hour * 60 + window.end.minute),
            "priority": False,
        }
    )


@dataclass
class Scene:
    """The seed catalogue and Friday evening's bookings, as events and as scan targets."""

    catalogue: Catalogue
    events: list[Event] = field(default_factory=list)
    #: Stalls of the markets open now, by district.
    open_stalls: dict[str, list[str]] = field(default_factory=dict)
    #: Stall → the vendor booked there for the running window.
    booked: dict[str, str] = field(default_factory=dict)
    #: Market → bookings expected today (what the projection must hold before scans start).
    expected: Counter[str] = field(default_factory=Counter)


def build_scene(rng: random.Random) -> Scene:
    """Every market and stall of the seed catalogue; 70 % of open markets' stalls booked."""
    scene = Scene(load_catalogue())
    windows: dict[str, MarketWindow] = {}
    for market in scene.catalogue.markets:
        scene.events.append(MarketChanged(market_id=market.id, market=market))
        window = window_open_at(market, NOW)
        if window is not None:
            windows[market.id] = window
    districts = {m.id: m.district.value for m in scene.catalogue.markets}
    for n, stall in enumerate(scene.catalogue.stalls):
        scene.events.append(StallChanged(market_id=stall.market_id, stall=stall))
        window = windows.get(stall.market_id)
        if window is None:
            continue
        scene.open_stalls.setdefault(districts[stall.market_id], []).append(stall.id)
        if rng.random() < BOOKED_SHARE:
            vendor = f"vd_bench{n:05d}"
            scene.booked[stall.id] = vendor
            scene.expected[stall.market_id] += 1
            scene.events.append(
                booking_created(
                    stall.market_id, stall.id, stall.category.value, vendor, window, FRIDAY
                )
            )
    return scene


def scan_requests(scene: Scene, patrols: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    """Each patrol's (token, body) requests: its district's stalls, as found there."""
    districts = sorted(scene.open_stalls)
    weights = [len(scene.open_stalls[d]) for d in districts]
    booked_by_district = {
        d: [s for s in scene.open_stalls[d] if s in scene.booked] for d in districts
    }
    out = []
    for i in range(patrols):
        district = rng.choices(districts, weights)[0] if i >= len(districts) else districts[i]
        token = dev_token(
            Role.PATROL, f"patrol-bench-{i:03d}", district=district, now=NOW, ttl_seconds=86400
        )
        mine = []
        for _ in range(REQUESTS_PER_PATROL):
            litter = rng.random() < LITTER_SHARE and bool(booked_by_district[district])
            pool = booked_by_district[district] if litter else scene.open_stalls[district]
            stall = rng.choice(pool)
            vendor = scene.booked.get(stall)
            body: dict[str, object] = {"code": code(stall), "occupied": vendor is not None}
            if vendor is not None:
                body["vendor_id"] = vendor
            if litter:
                body["violations"] = ["litter"]
            mine.append((token, json.dumps(body, separators=(",", ":"))))
        out.append(mine)
    return out


# -- infrastructure -----------------------------------------------------------------------------


async def publish(bootstrap: str, settings: InspectionSettings, events: list[Event]) -> float:
    """Publish ``events`` as their producers do (envelope, headers, keyed by market); seconds."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    began = time.monotonic()
    try:
        sent = []
        for event in events:
            envelope = Envelope.wrap(event, source=SOURCE, time=NOW - timedelta(hours=1))
            sent.append(
                await producer.send(
                    settings.topic(TOPICS[event.topic].name),
                    envelope.model_dump_json().encode(),
                    key=event.market_id.encode(),
                    headers=[(k, v.encode()) for k, v in envelope_headers(envelope).items()],
                )
            )
        await asyncio.gather(*sent)
        return time.monotonic() - began
    finally:
        await producer.stop()


def expected_key(settings: InspectionSettings, market_id: str, day: date) -> str:
    """The projection's hash of a market's expected bookings on ``day`` (RedisExpectationStore)."""
    return settings.key("insp", "{" + market_id + "}", "expected", day.isoformat())


async def projected(redis: Redis, keys: list[str]) -> int:
    """How many expected bookings the projection holds under ``keys``."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hlen(key)
        return sum(int(n) for n in await pipe.execute())


async def wait_ready(url: str, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200."""
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


@dataclass
class Stack:
    """The broker, redis-server and the services this run started."""

    work: Path
    bootstrap: str
    redis_url: str
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def settings(self, prefix: str) -> InspectionSettings:
        """Inspection's settings under ``prefix`` (topics ``<prefix>.``, keys ``<prefix>:``)."""
        return InspectionSettings.model_validate(
            {
                "kafka_bootstrap_servers": self.bootstrap,
                "redis_url": self.redis_url,
                "topic_prefix": f"{prefix}.",
                "redis_prefix": f"{prefix}:",
            }
        )

    def serve(self, settings: InspectionSettings, port: int) -> subprocess.Popen[bytes]:
        """The inspection app under ``settings``' prefixes, on the scene's clock."""
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "STALL_TOPIC_PREFIX": settings.topic_prefix,
            "STALL_REDIS_PREFIX": settings.redis_prefix,
            "STALL_CLOCK_OFFSET_SECONDS": str(NOW.timestamp() - time.time()),
            "STALL_LOG_LEVEL": "WARNING",
            "INSPECTION_EVIDENCE_DIR": str(self.work / "evidence"),
        }
        child = procs.spawn(
            [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning",
             "inspection.app:app", "--port", str(port)],
            env=env,
            log_path=self.work / f"inspection-{port}.log",
        )  # fmt: skip
        self.children.append(child)
        return child


# -- scans --------------------------------------------------------------------------------------


@dataclass
class ScanResult:
    """What one run of scans measured."""

    name: str
    requests: int
    seconds: float
    ok: int
    rejected: int
    failed: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def row(self) -> str:
        """One printable line."""
        return (
            f"{self.name:<26} {self.requests / self.seconds:>8.0f} {self.p50_ms:>8.1f} "
            f"{self.p90_ms:>8.1f} {self.p99_ms:>8.1f} {self.max_ms:>8.1f} {self.ok:>7} "
            f"{self.rejected:>5} {self.failed + self.errors:>5}"
        )


HEADER = (
    f"{'':<26} {'scans/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
    f"{'2xx':>7} {'4xx':>5} {'5xx+':>5}"
)


def wrk(
    name: str, url: str, requests_file: Path, key_prefix: str, *, seconds: float, connections: int
) -> ScanResult:
    """Drive ``url`` with wrk (one thread, ``connections`` connections) for ``seconds``."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is missing: `make bench` installs it (apt-get install wrk)")
    script = requests_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
         "-s", str(script), url, "--", str(requests_file), key_prefix],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    total, micros, ok, rejected, failed, errors = (int(x) for x in fields[:6])
    p50, p90, p99, peak = (float(x) for x in fields[6:])
    return ScanResult(name, total, micros / 1e6, ok, rejected, failed, errors, p50, p90, p99, peak)


async def httpx_run(
    name: str,
    url: str,
    requests: list[list[tuple[str, str]]],
    key_prefix: str,
    *,
    seconds: float,
    pace: float | None = None,
) -> ScanResult:
    """One AsyncClient per patrol, posting its requests for ``seconds``: back to back, or
    about once every ``pace`` seconds (uniformly 0.5-1.5 × ``pace`` apart)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    keys = itertools.count()
    began = time.monotonic()
    stop_at = began + seconds

    async def patrol(index: int, mine: list[tuple[str, str]]) -> None:
        rng = random.Random(index)
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            if pace:
                await asyncio.sleep(rng.uniform(0, pace))
            for token, body in itertools.cycle(mine):
                if time.monotonic() >= stop_at:
                    return
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": f"{key_prefix}-{next(keys)}",
                    "Content-Type": "application/json",
                }
                sent = time.perf_counter()
                try:
                    response = await client.post("/v1/scans", content=body, headers=headers)
                    statuses[response.status_code // 100] += 1
                except httpx.TransportError:
                    statuses[0] += 1
                latencies.append((time.perf_counter() - sent) * 1000)
                if pace:
                    await asyncio.sleep(rng.uniform(0.5, 1.5) * pace)

    await asyncio.gather(*(patrol(i, mine) for i, mine in enumerate(requests)))
    elapsed = time.monotonic() - began
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return ScanResult(
        name, len(latencies), elapsed, statuses[2], statuses[4], statuses[5], statuses[0],
        q[49], q[89], q[98], max(latencies),
    )  # fmt: skip


async def open_loop_run(
    url: str, requests: list[list[tuple[str, str]]], saturated: ScanResult, seconds: float
) -> ScanResult:
    """Scans at a constant half of ``saturated``'s throughput, open loop."""
    flat = list(itertools.chain.from_iterable(zip(*requests, strict=True)))

    def request(index: int) -> Request:
        token, body = flat[index % len(flat)]
        return {"Authorization": f"Bearer {token}", "Idempotency-Key": f"open-{index}"}, (
            body.encode()
        )

    rate = OPEN_LOOP_SHARE * saturated.requests / saturated.seconds
    r = await open_loop(f"open loop, {rate:.0f} scans/s", url, request, rate=rate, seconds=seconds)
    by_class = Counter(status // 100 for status in r.statuses.elements())
    return ScanResult(
        r.name, r.sent, seconds, by_class[2], by_class[4], by_class[5], by_class[0],
        r.p50_ms, r.percentile(90), r.p99_ms, r.percentile(100),
    )  # fmt: skip


async def written(redis: Redis, settings: InspectionSettings) -> Counter[str]:
    """Scans, warnings and cases the service stored under ``settings``' prefix."""
    found: Counter[str] = Counter()
    base = settings.key("insp", "{insp}", "")
    async for key in redis.scan_iter(match=f"{base}*", count=5000):
        kind = key.decode()[len(base) :].split(":", 1)[0]
        if kind in ("scan", "warning", "case"):
            found[kind] += 1
    return found


async def scans(stack: Stack, args: argparse.Namespace, redis: Redis) -> None:
    """Project the scene, then measure the runs asked for; print as they finish."""
    rng = random.Random(20261120)
    settings = stack.settings("b1")
    await ensure_topics(stack.bootstrap, settings.topic_prefix)
    scene = build_scene(rng)
    port = procs.free_port()
    stack.serve(settings, port)
    url = f"http://127.0.0.1:{port}"
    await publish(stack.bootstrap, settings, scene.events)
    await wait_ready(f"{url}/readyz")
    # Everything projected: each market's facts, stalls and today's bookings.
    markets = [m.id for m in scene.catalogue.markets]
    stall_count = Counter(s.market_id for s in scene.catalogue.stalls)
    deadline = time.monotonic() + 120
    while True:
        async with redis.pipeline(transaction=False) as pipe:
            for m in markets:
                pipe.exists(settings.key("insp", "{" + m + "}", "market"))
                pipe.hlen(settings.key("insp", "{" + m + "}", "stalls"))
                pipe.hlen(expected_key(settings, m, FRIDAY))
            replies = await pipe.execute()
        if all(
            (replies[3 * i], replies[3 * i + 1], replies[3 * i + 2])
            == (1, stall_count[m], scene.expected[m])
            for i, m in enumerate(markets)
        ):
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the scene was not projected in 120 s")
        await asyncio.sleep(0.2)
    open_markets = sum(1 for m in scene.catalogue.markets if window_open_at(m, NOW))
    print(
        f"\ninspection scans: {len(markets)} markets ({open_markets} open), "
        f"{len(scene.catalogue.stalls)} stalls, {len(scene.booked)} booked for the running "
        f"window; {args.concurrency} patrols in {len(scene.open_stalls)} districts, "
        f"{LITTER_SHARE:.0%} of scans with a violation; one uvicorn worker, "
        f"{args.warmup:g} s warm-up then {args.seconds:g} s per run",
        flush=True,
    )
    print(HEADER, flush=True)
    requests = scan_requests(scene, args.concurrency, rng)
    requests_file = stack.work / "scans.tsv"
    with requests_file.open("w") as out:
        for row in itertools.chain.from_iterable(zip(*requests, strict=True)):
            out.write(f"{row[0]}\t{row[1]}\n")
    target = f"{url}/v1/scans"
    runs = set(args.runs.split(","))
    results: list[ScanResult] = []
    if "wrk" in runs:
        wrk("warm-up", target, requests_file, "wrk-warm", seconds=args.warmup,
            connections=args.concurrency)  # fmt: skip
        results.append(
            wrk(
                f"wrk, {args.concurrency} connections",
                target,
                requests_file,
                "wrk",
                seconds=args.seconds,
                connections=args.concurrency,
            )
        )
        print(results[-1].row(), flush=True)
    if "httpx" in runs:
        await httpx_run("warm-up", url, requests, "httpx-warm", seconds=args.warmup)
        results.append(
            await httpx_run(
                f"httpx, {args.concurrency} clients", url, requests, "httpx", seconds=args.seconds
            )
        )
        print(results[-1].row(), flush=True)
    if "openloop" in runs and results and results[0].name.startswith("wrk"):
        results.append(await open_loop_run(target, requests, results[0], args.seconds))
        print(results[-1].row(), flush=True)
    if "paced" in runs:
        results.append(
            await httpx_run(
                f"paced, 1 scan/{args.pace:g} s each",
                url,
                requests,
                "paced",
                seconds=args.seconds,
                pace=args.pace,
            )
        )
        print(results[-1].row(), flush=True)
    for result in results:
        aim = OPEN_LOOP_AIM_MS if result.name.startswith("open loop") else 20
        record(Figure("inspection", f"POST /v1/scans p99, {result.name}", result.p99_ms, "ms",
                      aim=aim, aim_of="value", higher=False))  # fmt: skip
    found = await written(redis, settings)
    print(
        f"stored in all: {found['scan']} scans, {found['warning']} warnings, "
        f"{found['case']} cases (warm-ups included); aim: p99 <= 20 ms"
    )


# -- projection ---------------------------------------------------------------------------------


def bulk_bookings(catalogue: Catalogue, count: int) -> Iterator[BookingCreated]:
    """``count`` bookings of distinct (stall, day) slots, day after day from the scene's."""
    rng = random.Random(7)
    windows = {m.id: m.windows[0] for m in catalogue.markets}
    made = 0
    for offset in itertools.count():
        day = FRIDAY + timedelta(days=offset)
        for stall in catalogue.stalls:
            if made == count:
                return
            yield booking_created(
                stall.market_id,
                stall.id,
                stall.category.value,
                f"vd_bench{rng.randrange(100_000):05d}",
                windows[stall.market_id],
                day,
            )
            made += 1


@dataclass
class ConsumerResult:
    """How fast one consumer went through the events."""

    name: str
    events: int
    #: From the first fetch (or the first event seen projected) to the last event.
    steady_seconds: float
    counted_from: int
    #: From start (consumer start, or the service's spawn) to the last.
    total_seconds: float

    @property
    def rate(self) -> float:
        """Events per second, start-up left out."""
        return (self.events - self.counted_from) / self.steady_seconds

    def row(self) -> str:
        """One printable line."""
        return f"{self.name:<38} {self.events:>7} {self.rate:>9.0f} {self.total_seconds:>9.1f}"


async def bare_consumer(bootstrap: str, topic: str | list[str], count: int) -> ConsumerResult:
    """A bare AIOKafkaConsumer reading ``topic`` (or each of a list) from the beginning until
    it has read ``count`` messages, JSON decode only."""
    consumer = AIOKafkaConsumer(
        *([topic] if isinstance(topic, str) else topic),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    began = time.monotonic()
    await consumer.start()  # no group: reading starts at once
    started = time.monotonic()
    try:
        read = 0
        while read < count:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 60)
            for messages in batches.values():
                for message in messages:
                    json.loads(message.value or b"")
                    read += 1
        end = time.monotonic()
    finally:
        await consumer.stop()
    return ConsumerResult("bare AIOKafkaConsumer (JSON decode)", read, end - started, 0,
                          end - began)  # fmt: skip


async def service_consumer(
    stack: Stack, settings: InspectionSettings, redis: Redis, keys: list[str], count: int
) -> ConsumerResult:
    """The service's projection subscriber from the beginning, until Redis holds ``count``."""
    began = time.monotonic()
    child = stack.serve(settings, procs.free_port())
    first: tuple[float, int] | None = None
    deadline = began + max(180.0, count / 50)
    try:
        while True:
            held = await projected(redis, keys)
            now = time.monotonic()
            if first is None and held:
                first = (now, held)
            if held >= count:
                break
            if now > deadline:
                raise TimeoutError(f"projected {held} of {count} events in {now - began:.0f} s")
            await asyncio.sleep(0.05)
    finally:
        procs.stop(child)
    assert first is not None
    return ConsumerResult("inspection projection (group inspection)", held, now - first[0],
                          first[1], now - began)  # fmt: skip


async def projection(stack: Stack, args: argparse.Namespace, redis: Redis) -> None:
    """Publish ``args.events`` bookings, then time the bare consumer and the service's."""
    settings = stack.settings("b2")
    await ensure_topics(stack.bootstrap, settings.topic_prefix)
    catalogue = load_catalogue()
    events: list[Event] = list(bulk_bookings(catalogue, args.events))
    published = await publish(stack.bootstrap, settings, events)
    keys = sorted(
        {
            expected_key(settings, e.market_id, e.date)
            for e in events
            if isinstance(e, BookingCreated)
        }
    )
    print(
        f"\nprojection: {len(events)} booking.created on {BOOKINGS.partitions} partitions "
        f"(published in {published:.1f} s); start-up and group join left out",
        flush=True,
    )
    print(f"{'':<38} {'events':>7} {'events/s':>9} {'total s':>9}", flush=True)
    bare = await bare_consumer(stack.bootstrap, settings.topic(BOOKINGS.name), len(events))
    print(bare.row(), flush=True)
    service = await service_consumer(stack, settings, redis, keys, len(events))
    print(service.row(), flush=True)
    print(f"service/bare throughput ratio {service.rate / bare.rate:.3f} (aim: >= 0.50)")
    record(Figure("inspection", "projection consumer", service.rate, "events/s",
                  "bare aiokafka", bare.rate, aim=0.5))  # fmt: skip


# -- main ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    """Start the broker and redis-server, run both parts, stop everything."""
    work = Path(tempfile.mkdtemp(prefix="bench-inspection-"))
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
        if args.runs:
            await scans(stack, args, redis)
            for child in stack.children[2:]:
                procs.stop(child)  # the scan service would only take CPU from part 2
        if args.events:
            await projection(stack, args, redis)
    finally:
        await redis.aclose()
        for child in reversed(stack.children):
            procs.stop(child)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m stalltest.bench_inspection [--seconds 20] [--concurrency 50] ...``."""
    parser = argparse.ArgumentParser(description="inspection scan and projection benchmark")
    parser.add_argument("--seconds", type=float, default=20, help="length of each measured run")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up before the runs")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent patrols")
    parser.add_argument(
        "--runs",
        default="wrk,openloop,httpx,paced",
        help="comma-separated scan runs: wrk, openloop, httpx, paced (empty: skip the scans)",
    )
    parser.add_argument(
        "--pace", type=float, default=1.0, help="seconds between a paced patrol's scans"
    )
    parser.add_argument(
        "--events", type=int, default=20_000, help="booking.created events (0: skip)"
    )
    args = parser.parse_args(argv)
    if not set(filter(None, args.runs.split(","))) <= {"wrk", "openloop", "httpx", "paced"}:
        parser.error("--runs takes wrk, openloop (after wrk), httpx and/or paced")
    if args.concurrency < 1 or args.seconds <= 0 or args.events < 0:
        parser.error("--concurrency and --seconds must be positive, --events not negative")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
