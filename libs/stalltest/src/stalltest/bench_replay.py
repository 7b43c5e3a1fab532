"""Benchmark: a replay of synthetic market days into every projection, extrapolated to a year.

A year of the city's events is about 1.2 M; rebuilding a projection (a new consumer group and
Redis prefix reading the topics from the beginning) should take no more than 2 minutes. This
measures each service's replay rate on a sample of ``--days`` days and states what a year would
take at that rate: it does not replay a year.

Starts its own broker and redis-server (append-only file, ``appendfsync everysec``) on free
ports, then:

1. The sample. The seed catalogue's events (35 markets, 1,489 stalls), then ``--days`` full days
   from Friday 2026-11-20 on, each as :func:`stalltest.bench_reporting.full_day` makes it
   (bookings of 70 % of the active stalls of every window, their cancellations, check-ins and
   no-shows; per district 300 scans, 20 warnings, 15 cases and their steps), plus the window
   timeline windows announces for the day (opened, check-in deadline passed, closing soon and
   closed for every window instance, each with its boundary's stable id as the event id, at its
   due time). All published to fresh topics as their producers do (envelope, headers, keyed by
   market), in the order they happened.

2. The baseline. A bare AIOKafkaConsumer (no group, JSON decode only) reads every topic from
   the beginning; its rate counts from its first fetch.

3. Each service in turn (allocation, windows, inspection, reporting), a fresh uvicorn (one
   worker) with its own Redis prefix, its clock at 03:00 two days after the last day (no window
   boundary falls due during the run), consuming from the beginning in its own group. Its rate
   counts from the first offset its group committed to the moment the group has committed the
   end offset of every partition of the topics it reads: start-up and the group join are left
   out. A service that commits everything at once (a small share, one batch) counts from the
   moment its group was seen stable instead. Messages it dead-lettered are counted (a replay
   that dead-letters is not a valid measurement), and so are messages it published on the
   topics during its run.

Prints each figure and its extrapolation: the seconds for 1.2 M events at the service's rate,
and the seconds for a year's replay, that is the service's share of 1.2 M (the share of the
sample on the topics it reads: allocation reads only the windows topic). No thresholds. Run with
``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from contracts.catalogue import Catalogue
from contracts.envelope import Envelope, Event
from contracts.events import InspectionEvent, MarketResumed, MarketSuspended, WindowEvent
from contracts.seed import load_catalogue
from contracts.topics import DLQ_CONSUMER_HEADER, DLQ_REASON_HEADER, TOPICS
from stallctl import procs
from stallkit.clock import local_datetime
from stallkit.messaging import ensure_topics, envelope_headers
from stallkit.settings import CommonSettings
from stalltest.bench_inspection import bare_consumer
from stalltest.bench_reporting import DAY, catalogue_events, counted, full_day
from stalltest.benchtable import Figure, record
from windows.domain.plan import boundary_event
from windows.domain.schedule import MarketSchedule, WindowSpec
from windows.domain.timeline import materialise

#: A year of the city's events (the issue's estimate), and the aim for replaying it.
YEAR_EVENTS = 1_200_000
AIM_SECONDS = 120.0
#: The first replayed day (bench_reporting's reported day, whose ids stay as they were).
FIRST_DAY = DAY
#: The topic prefix of the replay.
PREFIX = "rp"
#: A service whose group's committed offsets have not moved for this long is given up on.
STALLED_SECONDS = 90.0
#: How often the group's committed offsets are read.
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Service:
    """A service that consumes: its app, its consumer group and the topics it reads."""

    name: str
    group: str
    topics: tuple[str, ...]


#: Each service's consumer group and topics, as its subscribers register them.
SERVICES = (
    Service("allocation", "allocation", ("windows",)),
    Service("windows", "windows", ("catalogue", "bookings")),
    Service("inspection", "inspection", ("catalogue", "bookings", "windows")),
    Service("reporting", "reporting", ("catalogue", "bookings", "windows", "inspection")),
)
READ_TOPICS = ("catalogue", "bookings", "windows", "inspection")


# -- the sample ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One event as published: when, by whom, under which envelope id (None: a fresh one)."""

    event: Event
    at: datetime
    event_id: str | None = None

    @property
    def source(self) -> str:
        """The service that publishes it."""
        if isinstance(self.event, WindowEvent | MarketSuspended | MarketResumed):
            return "/services/windows"
        if isinstance(self.event, InspectionEvent):
            return "/services/inspection"
        return "/services/allocation"


def morning_after(day: date) -> datetime:
    """10:00 local the day after ``day``: when the day's reports are asked for."""
    return local_datetime(day + timedelta(days=1), 10 * 60)


def service_now(days: Sequence[date]) -> datetime:
    """The services' clock: 03:00 local two days after the last day, when no window runs."""
    return local_datetime(days[-1] + timedelta(days=2), 3 * 60)


def window_events(catalogue: Catalogue, day: date, as_of: datetime) -> list[Item]:
    """Every boundary of every window instance on ``day``, as windows announces it."""
    items: list[Item] = []
    for market in catalogue.markets:
        schedule = MarketSchedule(
            market_id=market.id,
            district=market.district.value,
            windows=tuple(
                WindowSpec(w.id, w.name_zh, w.name_en, tuple(sorted(w.days)), w.start, w.end)
                for w in market.windows
            ),
            as_of=as_of,
        )
        items += [
            Item(boundary_event(b, market.district), b.due, b.id)
            for b in materialise(schedule, day, days=1)
        ]
    return items


def replay_days(first: date, count: int) -> list[date]:
    """``count`` consecutive days from ``first``."""
    return [first + timedelta(days=n) for n in range(count)]


def day_items(catalogue: Catalogue, day: date, as_of: datetime) -> list[Item]:
    """One day: ``full_day``'s events (its own seed) and the day's window timeline."""
    made = full_day(catalogue, random.Random(day.toordinal()), day=day, now=morning_after(day))
    return [Item(e, at) for e, at in made.sent] + window_events(catalogue, day, as_of)


@dataclass
class Sample:
    """The events of the replay, in the order they are published."""

    days: list[date]
    items: list[Item] = field(default_factory=list)
    #: Events per day (catalogue excluded).
    per_day: list[int] = field(default_factory=list)
    catalogue_count: int = 0

    def by_topic(self) -> Counter[str]:
        """Events per topic (the contract key: catalogue, bookings, windows, inspection)."""
        return Counter(i.event.topic for i in self.items)

    def by_type(self) -> Counter[str]:
        """Events per event type."""
        return Counter(i.event.event_name for i in self.items)


def build_sample(catalogue: Catalogue, days: list[date]) -> Sample:
    """The catalogue, then every day's events, sorted by when they happened (stable)."""
    catalogued = days[0] - timedelta(days=30)
    at = local_datetime(catalogued, 12 * 60)
    known = [Item(e, t) for e, t in catalogue_events(catalogue, at)]
    sample = Sample(days, catalogue_count=len(known))
    rest: list[Item] = []
    for day in days:
        items = day_items(catalogue, day, at)
        sample.per_day.append(len(items))
        rest += items
    rest.sort(key=lambda i: i.at)
    sample.items = known + rest
    return sample


# -- infrastructure -----------------------------------------------------------------------------


def topic_name(key: str) -> str:
    """The prefixed topic of a contract key."""
    return f"{PREFIX}.{TOPICS[key].name}"


async def publish(bootstrap: str, items: Sequence[Item]) -> float:
    """Publish each item as its producer does (envelope, headers, keyed by market); seconds."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    began = time.monotonic()
    try:
        futures = []
        for item in items:
            envelope = Envelope.wrap(
                item.event, source=item.source, time=item.at, event_id=item.event_id
            )
            futures.append(
                await producer.send(
                    topic_name(item.event.topic),
                    envelope.model_dump_json().encode(),
                    key=item.event.market_id.encode(),
                    headers=[(k, v.encode()) for k, v in envelope_headers(envelope).items()],
                )
            )
        await asyncio.gather(*futures)
        return time.monotonic() - began
    finally:
        await producer.stop()


class Offsets:
    """End offsets of topics, and a consumer group's committed offsets.

    End offsets are the high watermarks of a fetch of each partition: the embedded broker
    (Tansu) answers ListOffsets (``end_offsets``) with the last record batch's base offset, short
    of the end. Committed offsets come from ``list_consumer_group_offsets`` with the partitions
    named (without them, the broker's answer does not decode).
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)

    async def start(self) -> None:
        """Connect."""
        await self.admin.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self.admin.close()

    @staticmethod
    def partitions(keys: Iterable[str]) -> list[TopicPartition]:
        """Every partition of the contract topics ``keys``."""
        return [TopicPartition(topic_name(k), p) for k in keys for p in range(TOPICS[k].partitions)]

    async def ends(self, keys: Iterable[str]) -> dict[TopicPartition, int]:
        """The end offset of every partition of ``keys`` (all replayed topics start at 0)."""
        partitions = self.partitions(keys)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            for partition in partitions:
                consumer.seek(partition, 0)
            async with asyncio.timeout(30):
                while any(consumer.highwater(p) is None for p in partitions):
                    await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
            return {p: consumer.highwater(p) or 0 for p in partitions}
        finally:
            await consumer.stop()

    async def committed(
        self, group: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The offsets ``group`` committed on ``partitions`` (0 where it committed none)."""
        found = await self.admin.list_consumer_group_offsets(group, partitions=partitions)
        return {p: max(0, found[p].offset) if p in found else 0 for p in partitions}

    async def joined(self, group: str) -> bool:
        """Whether ``group`` has members and its join is over (the group is stable)."""
        for response in await self.admin.describe_consumer_groups([group]):
            for error_code, group_id, state, _protocol_type, _protocol, members in response.groups:
                if group_id == group and not error_code and state == "Stable" and members:
                    return True
        return False


@dataclass
class Stack:
    """The broker and redis-server this run started, and the services it spawns."""

    work: Path
    bootstrap: str
    redis_url: str
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def serve(self, service: Service, now: datetime) -> subprocess.Popen[bytes]:
        """``service``'s app reading the replay's topics, own Redis prefix, clock at ``now``."""
        port = procs.free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "STALL_TOPIC_PREFIX": f"{PREFIX}.",
            "STALL_REDIS_PREFIX": f"{PREFIX}-{service.name}:",
            "STALL_CLOCK_OFFSET_SECONDS": str(now.timestamp() - time.time()),
            "STALL_LOG_LEVEL": "WARNING",
            "INSPECTION_EVIDENCE_DIR": str(self.work / "evidence"),
            "ALLOCATION_SMS_OUTBOX": str(self.work / "sms-outbox.jsonl"),
        }
        child = procs.spawn(
            [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning",
             f"{service.name}.app:app", "--port", str(port)],
            env=env,
            cwd=self.work,
            log_path=self.work / f"{service.name}.log",
        )  # fmt: skip
        self.children.append(child)
        return child


# -- the measurements ---------------------------------------------------------------------------


@dataclass
class Replayed:
    """How fast one consumer went through its topics."""

    name: str
    events: int
    #: From its first fetch (bare) or first commit (service; its group's join when that
    #: commit was everything) to the end.
    steady_seconds: float
    #: Events already read (committed) when the steady time began.
    counted_from: int
    #: From its start (consumer start, or the service's spawn) to the end.
    total_seconds: float
    dead_letters: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)
    #: Messages published on the replayed topics during the run (by the service itself).
    published: int = 0
    #: Events the service says it applied, where it says (reporting's stats total).
    counted: int | None = None

    @property
    def rate(self) -> float:
        """Events per second, start-up and group join left out."""
        return (self.events - self.counted_from) / self.steady_seconds

    def seconds_for(self, events: float) -> float:
        """Seconds for ``events`` at this rate."""
        return events / self.rate


def year_share(sample: Sample, topics: Iterable[str]) -> float:
    """The share of the sample's events on ``topics``: of a year's events, those read."""
    by_topic = sample.by_topic()
    return sum(by_topic[t] for t in topics) / len(sample.items)


async def bare_replay(bootstrap: str, count: int) -> Replayed:
    """A bare AIOKafkaConsumer reading every topic from the beginning, JSON decode only."""
    bare = await bare_consumer(bootstrap, [topic_name(k) for k in READ_TOPICS], count)
    return Replayed(bare.name, bare.events, bare.steady_seconds, 0, bare.total_seconds)


async def dead_lettered(bootstrap: str, start: int, end: int) -> Counter[str]:
    """The dead letters at offsets ``start`` .. ``end - 1``: by consumer and reason (cut)."""
    reasons: Counter[str] = Counter()
    if end <= start:
        return reasons
    partition = TopicPartition(topic_name("dead_letter"), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, start)
        deadline = time.monotonic() + 60
        while await consumer.position(partition) < end and time.monotonic() < deadline:
            batches = await consumer.getmany(partition, timeout_ms=1000)
            for message in batches.get(partition, []):
                if message.offset >= end:
                    continue
                headers = {k: v.decode(errors="replace") for k, v in message.headers}
                reason = headers.get(DLQ_REASON_HEADER, "?")[:120]
                reasons[f"{headers.get(DLQ_CONSUMER_HEADER, '?')}: {reason}"] += 1
    finally:
        await consumer.stop()
    return reasons


async def service_replay(
    stack: Stack, offsets: Offsets, service: Service, now: datetime
) -> Replayed:
    """``service`` from the beginning, until its group committed every end offset."""
    watched = [*READ_TOPICS, "dead_letter"]
    before = await offsets.ends(watched)
    read = offsets.partitions(service.topics)
    target = {p: before[p] for p in read}
    events = sum(target.values())
    group = f"{PREFIX}.{service.group}"
    began = time.monotonic()
    child = stack.serve(service, now)
    first: tuple[float, int] | None = None
    joined: float | None = None
    moved, last = began, -1
    try:
        while True:
            committed = await offsets.committed(group, read)
            if joined is None and await offsets.joined(group):
                # Seen now; it happened since the previous look, at the earliest.
                joined = max(began, time.monotonic() - POLL_SECONDS)
            now_ = time.monotonic()
            done = sum(min(committed[p], target[p]) for p in read)
            if first is None and done:
                first = (now_, done)
            if all(committed[p] >= target[p] for p in read):
                break
            if child.poll() is not None:
                raise RuntimeError(f"{service.name} exited ({child.returncode}); see its log")
            if done != last:
                moved, last = now_, done
            elif now_ - moved > STALLED_SECONDS:
                raise TimeoutError(f"{service.name} stuck at {done} of {events} events")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        procs.stop(child)
    if first is None or first[1] >= events:
        # All of it in the first commit (one batch): count from the group's join, else spawn.
        first = (began if joined is None else joined, 0)
    after = await offsets.ends(watched)
    dead = offsets.partitions(["dead_letter"])[0]
    grown = sum(after[p] - before[p] for p in after if p != dead)
    result = Replayed(
        f"{service.name} (group {service.group})",
        events,
        now_ - first[0],
        first[1],
        now_ - began,
        dead_letters=after[dead] - before[dead],
        published=grown,
    )
    result.dead_reasons = await dead_lettered(stack.bootstrap, before[dead], after[dead])
    if service.name == "reporting":
        result.counted = await reporting_counted(stack.redis_url, service)
    return result


async def reporting_counted(redis_url: str, service: Service) -> int:
    """The events reporting counted (its stats total): every event it read, once."""
    settings = CommonSettings.model_validate({"redis_prefix": f"{PREFIX}-{service.name}:"})
    redis = Redis.from_url(redis_url)
    try:
        return await counted(redis, settings)
    finally:
        await redis.aclose()


# -- the report ---------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``seconds`` as ``1 h 02 min``, ``3 min 05 s`` or ``42 s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def describe(sample: Sample) -> str:
    """The sample: days, counts, and the mix by topic and by type."""
    days = sample.days
    by_topic = sample.by_topic()
    per_day = sum(sample.per_day) / len(sample.per_day)
    lines = [
        f"\nreplay sample: {len(days)} days ({days[0]:%a %Y-%m-%d} .. {days[-1]:%a %Y-%m-%d}), "
        f"{len(sample.items):,} events: the seed catalogue's {sample.catalogue_count:,}, then "
        f"{per_day:,.0f} a day on average (at that density a year is "
        f"{per_day * 365:,.0f}; the aim's year is {YEAR_EVENTS:,})",
        "by topic: " + ", ".join(f"{t} {by_topic[t]:,}" for t in READ_TOPICS),
        "by type: " + ", ".join(f"{t} {n:,}" for t, n in sample.by_type().most_common()),
    ]
    return "\n".join(lines)


HEADER = (
    f"{'':<38} {'events':>7} {'s':>7} {'events/s':>9} {'total s':>8} {'dead':>5} "
    f"{'1.2 M events':>14} {'year share':>10} {'year replay':>14}"
)


def row(result: Replayed, share: float) -> str:
    """One printable line: the figures and both extrapolations."""
    return (
        f"{result.name:<38} {result.events:>7} {result.steady_seconds:>7.1f} "
        f"{result.rate:>9.0f} {result.total_seconds:>8.1f} {result.dead_letters:>5} "
        f"{duration(result.seconds_for(YEAR_EVENTS)):>14} {share:>10.0%} "
        f"{duration(result.seconds_for(YEAR_EVENTS * share)):>14}"
    )


# -- main ---------------------------------------------------------------------------------------


async def replay(stack: Stack, args: argparse.Namespace) -> None:
    """Publish the sample, read it bare, then replay it into each service asked for."""
    catalogue = load_catalogue()
    sample = build_sample(catalogue, replay_days(FIRST_DAY, args.days))
    print(describe(sample), flush=True)
    await ensure_topics(stack.bootstrap, f"{PREFIX}.")
    published = await publish(stack.bootstrap, sample.items)
    now = service_now(sample.days)
    print(
        f"published in {published:.1f} s; each service a fresh uvicorn (one worker, own Redis "
        f"prefix and group), clock at {now:%a %Y-%m-%d %H:%M} local, from the beginning; its time "
        "runs from its group's first committed offset to the end offsets of the topics it "
        "reads (start-up and group join left out, 'total s' from spawn); 'year replay' is the "
        f"service's share of {YEAR_EVENTS:,} events (those on its topics) at its rate",
        flush=True,
    )
    print(HEADER, flush=True)
    bare = await bare_replay(stack.bootstrap, len(sample.items))
    print(row(bare, 1.0), flush=True)
    offsets = Offsets(stack.bootstrap)
    await offsets.start()
    results: list[tuple[Service, Replayed, float]] = []
    try:
        ends = await offsets.ends(READ_TOPICS)
        if sum(ends.values()) != len(sample.items) or bare.events != len(sample.items):
            raise RuntimeError(
                f"published {len(sample.items)} events, the topics end after "
                f"{sum(ends.values())}, the bare consumer read {bare.events}"
            )
        for service in SERVICES:
            if service.name not in args.services:
                continue
            result = await service_replay(stack, offsets, service, now)
            share = year_share(sample, service.topics)
            results.append((service, result, share))
            print(row(result, share), flush=True)
    finally:
        await offsets.stop()
    odd = False
    for service, result, share in results:
        if result.dead_letters:
            odd = True
            print(f"NOT A VALID MEASUREMENT: {service.name} dead-lettered {result.dead_letters}:")
            for reason, n in result.dead_reasons.most_common(5):
                print(f"  {n:>6}  {reason}")
        if result.counted is not None and result.counted != result.events:
            odd = True
            print(f"{service.name} counted {result.counted} of the {result.events} events")
        if result.published:
            odd = True
            print(f"{service.name} published {result.published} messages on the topics meanwhile")
        seconds = result.seconds_for(YEAR_EVENTS * share)
        bare_seconds = bare.seconds_for(YEAR_EVENTS * share)
        name = f"{service.name}: year replay ({share:.0%} of 1.2 M events), extrapolated"
        record(Figure("replay", name, seconds, "s", "bare aiokafka", bare_seconds,
                      aim=AIM_SECONDS, aim_of="value", higher=False))  # fmt: skip
    if results and not odd:
        print(
            "no service dead-lettered or published anything during its replay"
            + (", reporting counted every event" if "reporting" in args.services else "")
        )
    print(
        f"aim: a year ({YEAR_EVENTS:,} events) replayed into every projection in "
        f"<= {AIM_SECONDS:.0f} s; the bare consumer would take "
        f"{duration(bare.seconds_for(YEAR_EVENTS))} for all of it"
    )


async def run(args: argparse.Namespace) -> None:
    """Start the broker and redis-server, replay, stop everything."""
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    kafka_port, redis_port = procs.free_port(), procs.free_port()
    stack = Stack(work, f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0")
    stack.children += [
        procs.spawn(procs.broker_args(kafka_port), log_path=work / "broker.log"),
        procs.spawn(procs.redis_args(redis_port, work, persistent=True), log_path=work / "r.log"),
    ]
    try:
        procs.wait_for_port(kafka_port, proc=stack.children[0])
        procs.wait_for_port(redis_port, proc=stack.children[1])
        await replay(stack, args)
    finally:
        for child in reversed(stack.children):
            procs.stop(child)
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m stalltest.bench_replay [--days 5] [--services allocation,windows,...]``."""
    parser = argparse.ArgumentParser(description="replay of synthetic days into every projection")
    parser.add_argument("--days", type=int, default=5, help="days of events in the sample")
    parser.add_argument(
        "--services",
        default=",".join(s.name for s in SERVICES),
        help="comma-separated services to replay into (empty: only the bare consumer)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    args = parser.parse_args(argv)
    known = {s.name for s in SERVICES}
    args.services = set(filter(None, args.services.split(",")))
    if args.days < 1 or not args.services <= known:
        parser.error(f"--days must be positive, --services among {', '.join(sorted(known))}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
