"""Benchmark: from a booking's 201 to its event at every SSE subscriber of the district's feed.

Starts its own broker and redis-server on free ports, allocation and reporting as separate
uvicorn processes (one worker each, same topic and key prefixes), loads the seed catalogue and
opens ``--subscribers`` SSE streams on reporting's ``GET /v1/feeds/xiangzhou/events`` from a
child process of their own (raw asyncio sockets: lighter than 100 httpx streams). Once a warm-up
booking has reached every stream, this process books ``--bookings`` stalls of the district,
``--interval-ms`` apart, one at a time, and notes when each 201 came back; the child notes when
each booking's ``booking.created`` entry reached each stream. Then, on the same broker, a bare
aiokafka producer → consumer round trip over as many messages, equally spaced. Prints the
figures; no thresholds (the aim of the district-feeds issue: p99 ≤ 100 ms). Run with
``make bench``.

Times are wall-clock (``time.time()``), comparable across the processes of one machine and with
the feed entry ids, which are Redis stream ids (the ms at which reporting appended the entry):
that splits each latency into 201 → feed append (outbox relay, Kafka, reporting's consumer) and
feed append → SSE event (fan-out, stream write, client read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.catalogue import District
from contracts.seed import load_catalogue
from stallctl import procs
from stallkit.auth import Role
from stallkit.messaging import ensure_topics
from stallkit.settings import CommonSettings
from stalltest.bench_allocation import _next_monday_9am, _vendors, _wait_ready
from stalltest.benchtable import Figure, record
from stalltest.tokens import dev_token

DISTRICT = District.XIANGZHOU
WARM_UPS = 3
FETCH_MAX_WAIT_MS: int = CommonSettings.model_fields["kafka_fetch_max_wait_ms"].default
SCRATCH_TOPIC = "bench-roundtrip"
#: The child's last line holds every arrival time (100 streams × 200 bookings is ~1 MB).
RESULT_LINE_LIMIT = 64 * 1024 * 1024


# --- the subscribers' process --------------------------------------------------------------


class Streams:
    """``count`` SSE streams of one feed; what reached each, and when."""

    def __init__(self, count: int):
        self.count = count
        self.connected = 0
        self.arrivals: dict[str, list[float | None]] = {}
        self.entry_ids: dict[str, str] = {}
        self.failures: list[str] = []

    def _say(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def _event(self, index: int, block: bytes, at: float) -> None:
        fields: dict[bytes, bytes] = {}
        for line in block.split(b"\n"):
            name, _, value = line.partition(b":")
            if name:  # comment lines (heartbeats) have no name
                fields[name] = value.removeprefix(b" ")
        if fields.get(b"event") != b"booking.created":
            return
        entry = json.loads(fields[b"data"])
        booking_id = entry["event"]["data"]["booking_id"]
        times = self.arrivals.setdefault(booking_id, [None] * self.count)
        self.entry_ids.setdefault(booking_id, entry["id"])
        if times[index] is None:
            times[index] = at
            if all(t is not None for t in times):
                self._say(f"seen {booking_id}")

    async def follow(self, url: str, token: str, index: int) -> None:
        """One stream: HTTP/1.1 GET, then chunks (one per SSE event) until the server ends it."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            status = head.split(b"\r\n", 1)[0].decode()
            raise RuntimeError(f"stream {index}: {status}")
        chunked = b"transfer-encoding: chunked" in head.lower()
        self.connected += 1
        if self.connected == self.count:
            self._say(f"connected {self.count}")
        buffer = b""
        while True:
            if chunked:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    break
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    break
            at = time.time()
            buffer = (buffer + data).replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                self._event(index, buffer[:end], at)
                buffer = buffer[end + 2 :]
        writer.close()

    async def _guarded(self, url: str, token: str, index: int) -> None:
        try:
            await self.follow(url, token, index)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures.append(f"stream {index}: {exc!r}")
            self._say(f"failed {exc!r}")

    async def run(self, url: str, token: str) -> None:
        """Follow every stream until ``stop`` comes on stdin, then print the arrivals."""
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self._guarded(url, token, i)) for i in range(self.count)]
        await loop.run_in_executor(None, sys.stdin.readline)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        result = {"arrivals": self.arrivals, "entries": self.entry_ids, "failures": self.failures}
        self._say("result " + json.dumps(result))


# --- the driver -----------------------------------------------------------------------------


@dataclass
class Child:
    """The subscribers' process, read line by line."""

    proc: asyncio.subprocess.Process
    seen: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    connected: bool = False
    failures: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None

    async def read(self) -> None:
        """Note what the child says, until it ends."""
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            kind, _, rest = raw.decode().rstrip("\n").partition(" ")
            if kind == "seen":
                self.seen.add(rest)
            elif kind == "connected":
                self.connected = True
            elif kind == "failed":
                self.failures.append(rest)
            elif kind == "result":
                self.result = json.loads(rest)
            self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``done()`` holds; TimeoutError naming ``what`` after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    if self.failures:
                        raise RuntimeError(f"a subscriber failed: {self.failures[0]}")
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{what} not within {timeout:.0f} s") from None


def p99_ms(values: Sequence[float]) -> float:
    """The 99th percentile of ``values`` (seconds) in ms, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(0.99 * len(ordered) + 0.5) - 1))] * 1000


def percentiles(values: Sequence[float]) -> str:
    """p50/p90/p99/max of ``values`` (seconds) in ms, nearest rank."""
    if not values:
        return "no values"
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))] * 1000

    return (
        f"p50 {rank(0.50):6.1f}   p90 {rank(0.90):6.1f}   p99 {rank(0.99):6.1f}"
        f"   max {ordered[-1] * 1000:6.1f} ms"
    )


async def _stats_of_markets(client: httpx.AsyncClient, url: str, token: str) -> int:
    response = await client.get(
        url, params={"district": DISTRICT.value}, headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    events: dict[str, int] = response.json()["events"]
    return sum(n for t, n in events.items() if "market.changed" in t)


async def round_trip(bootstrap: str, count: int, interval: float) -> list[float]:
    """Bare aiokafka: produce (acks=all) → consume on a scratch topic, one message at a time."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(SCRATCH_TOPIC, 1, 1)])
    finally:
        await admin.close()
    partition = TopicPartition(SCRATCH_TOPIC, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        sent: dict[int, float] = {}
        received: dict[int, float] = {}

        async def consume() -> None:
            while len(received) < count:
                message = await consumer.getone()
                received[int(message.value or b"-1")] = time.time()

        consuming = asyncio.create_task(consume())
        await asyncio.sleep(0.5)  # the consumer's first fetch is out
        start = time.monotonic()
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
            sent[n] = time.time()
            await producer.send_and_wait(SCRATCH_TOPIC, str(n).encode(), partition=0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(consuming), 10)
        consuming.cancel()
        return [received[n] - sent[n] for n in sent if n in received]
    finally:
        await producer.stop()
        await consumer.stop()


@dataclass
class Figures:
    """What one run measured (seconds)."""

    latencies: list[float]
    expected: int
    to_append: list[float]
    from_append: list[float]
    booked: int
    refused: list[str]
    kafka: list[float]


async def run(subscribers: int, bookings: int, interval: float) -> Figures:
    """Start everything, measure, stop everything."""
    work = Path(tempfile.mkdtemp(prefix="feeds-bench-"))
    kafka_port, redis_port, alloc_port, report_port = (procs.free_port() for _ in range(4))
    bootstrap = f"127.0.0.1:{kafka_port}"
    now = _next_monday_9am()
    prefix = "bench-"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "STALL_TOPIC_PREFIX": prefix,
        "STALL_CLOCK_OFFSET_SECONDS": str(now.timestamp() - time.time()),
        "STALL_LOG_LEVEL": "WARNING",
        "ALLOCATION_WEEKLY_CAP": "7",
        "ALLOCATION_PRIORITY_HORIZON_DAYS": "28",
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    children = [
        procs.spawn(procs.broker_args(kafka_port), log_path=work / "broker.log"),
        procs.spawn(procs.redis_args(redis_port, work, persistent=True), log_path=work / "r.log"),
    ]
    child: Child | None = None
    try:
        procs.wait_for_port(kafka_port)
        procs.wait_for_port(redis_port)
        await ensure_topics(bootstrap, prefix)
        for module, port in (("allocation", alloc_port), ("reporting", report_port)):
            children.append(
                procs.spawn(
                    [*uvicorn, f"{module}.app:app", "--port", str(port)],
                    env=env,
                    log_path=work / f"{module}.log",
                )
            )
        alloc, report = f"http://127.0.0.1:{alloc_port}", f"http://127.0.0.1:{report_port}"
        await _wait_ready(f"{alloc}/readyz")
        await _wait_ready(f"{report}/readyz")
        catalogue = load_catalogue()
        admin = dev_token(Role.ADMIN, "bench", now=now, ttl_seconds=86400)
        district_token = dev_token(
            Role.DISTRICT, "bench-office", district=DISTRICT.value, now=now, ttl_seconds=86400
        )
        markets = {m.id for m in catalogue.markets if m.district is DISTRICT}
        evening = {
            m.id
            for m in catalogue.markets
            if m.id in markets and any(w.id == "evening" and len(w.days) == 7 for w in m.windows)
        }
        stalls = [s.id for s in catalogue.stalls if s.market_id in evening]
        total = WARM_UPS + bookings
        vendors = await _vendors(env["REDIS_URL"], min(total, len(stalls)), now)
        tokens = [dev_token(Role.VENDOR, v, now=now, ttl_seconds=86400) for v in vendors]
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.put(
                f"{alloc}/v1/admin/catalogue",
                json=catalogue.model_dump(mode="json"),
                headers={"Authorization": f"Bearer {admin}"},
            )
            response.raise_for_status()
            # Reporting places booking events in a district once it has the market.changed ones.
            deadline = time.monotonic() + 60
            while await _stats_of_markets(client, f"{report}/v1/stats", admin) < len(markets):
                if time.monotonic() > deadline:
                    raise TimeoutError("reporting did not get the catalogue's market.changed")
                await asyncio.sleep(0.2)

            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "stalltest.bench_feeds",
                "--serve-subscribers", f"{report}/v1/feeds/{DISTRICT.value}/events",
                "--subscribers", str(subscribers),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "BENCH_FEED_TOKEN": district_token},
                limit=RESULT_LINE_LIMIT,
            )  # fmt: skip
            child = Child(proc)
            reading = asyncio.create_task(child.read())
            await child.until(lambda: child.connected, 60, "all subscribers connected")

            async def book(n: int) -> tuple[str | None, float]:
                """Booking n: vendor n % V on stall n % S, day after day; (id or None, t_201)."""
                day = now.date() + timedelta(days=1 + n // len(stalls))
                body = {"stall_id": stalls[n % len(stalls)], "date": day.isoformat()}
                response = await client.post(
                    f"{alloc}/v1/bookings",
                    json={**body, "window_id": "evening"},
                    headers={
                        "Authorization": f"Bearer {tokens[n % len(tokens)]}",
                        "Idempotency-Key": f"bench-{n}",
                    },
                )
                at = time.time()
                if response.status_code != 201:
                    return None, at
                return str(response.json()["id"]), at

            for n in range(WARM_UPS):
                warm_id, _ = await book(n)
                if warm_id is None:
                    raise RuntimeError("the warm-up booking was refused")
                await child.until(
                    partial(child.seen.issuperset, {warm_id}), 60, "the warm-up booking"
                )
            booked: dict[str, float] = {}
            refused: list[str] = []
            start = time.monotonic()
            for n in range(WARM_UPS, total):
                await asyncio.sleep(max(0.0, start + (n - WARM_UPS) * interval - time.monotonic()))
                booking_id, at = await book(n)
                if booking_id is None:
                    refused.append(f"booking {n}")
                else:
                    booked[booking_id] = at
            with contextlib.suppress(TimeoutError):
                await child.until(lambda: child.seen >= booked.keys(), 15, "every booking")
            assert proc.stdin is not None
            proc.stdin.write(b"stop\n")
            await proc.stdin.drain()
            await asyncio.wait_for(reading, 60)
            await proc.wait()
        result = child.result or {"arrivals": {}, "entries": {}}
        latencies, to_append, from_append = [], [], []
        for booking_id, t0 in booked.items():
            times = [t for t in result["arrivals"].get(booking_id, []) if t is not None]
            latencies += [t - t0 for t in times]
            if booking_id in result["entries"]:
                appended = int(result["entries"][booking_id].split("-")[0]) / 1000
                to_append.append(appended - t0)
                from_append += [t - appended for t in times]
        kafka = await round_trip(bootstrap, bookings, interval)
        return Figures(
            latencies,
            len(booked) * subscribers,
            to_append,
            from_append,
            len(booked),
            refused,
            kafka,
        )
    finally:
        if child is not None and child.proc.returncode is None:
            child.proc.kill()
            await child.proc.wait()
        for process in reversed(children):
            procs.stop(process)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print the figures (or, as the child, follow the streams)."""
    parser = argparse.ArgumentParser(description="district feed (SSE) latency benchmark")
    parser.add_argument("--subscribers", type=int, default=100, help="SSE streams of the feed")
    parser.add_argument("--bookings", type=int, default=200, help="bookings measured")
    parser.add_argument("--interval-ms", type=float, default=50, help="time between bookings")
    parser.add_argument("--serve-subscribers", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_subscribers:
        procs.request_death_signal()
        streams = Streams(args.subscribers)
        asyncio.run(streams.run(args.serve_subscribers, os.environ["BENCH_FEED_TOKEN"]))
        return
    figures = asyncio.run(run(args.subscribers, args.bookings, args.interval_ms / 1000))
    print(
        f"\ndistrict feed benchmark: {args.subscribers} SSE subscribers of {DISTRICT.value} "
        f"(one process, raw sockets), {args.bookings} bookings {args.interval_ms:g} ms apart; "
        "broker, redis-server, allocation and reporting as separate processes (one uvicorn "
        "worker each), same machine, same run"
    )
    if figures.refused:
        print(f"bookings refused: {len(figures.refused)} (not measured)")
    print(
        f"201 → SSE event at each subscriber      {percentiles(figures.latencies)}"
        f"   arrived {len(figures.latencies)}/{figures.expected}   (aim: p99 ≤ 100 ms)"
    )
    if figures.latencies and figures.kafka:
        record(Figure("feeds", "201 → SSE event p99", p99_ms(figures.latencies), "ms",
                      "bare Kafka p99", p99_ms(figures.kafka), aim=100, aim_of="value",
                      higher=False))  # fmt: skip
    print(f"  201 → feed append (per booking)      {percentiles(figures.to_append)}")
    print(f"  feed append → SSE event (per pair)   {percentiles(figures.from_append)}")
    print(
        f"bare Kafka produce → consume           {percentiles(figures.kafka)}"
        f"   ({len(figures.kafka)} messages, acks=all, fetch_max_wait_ms={FETCH_MAX_WAIT_MS})"
    )


if __name__ == "__main__":
    main()
