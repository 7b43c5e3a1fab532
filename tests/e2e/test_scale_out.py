"""Scale-out on one machine: the demo's whole day (35 markets, 1,489 stalls, 2,000 vendors, the
clock 200× real time; ``STALL_SCALE_OUT_DAY=reduced``: two markets in two districts, 120 vendors,
600×) with every service run as two replicas in the same consumer groups, and
Redis a real three-master Redis Cluster (``REDIS_URL=redis+cluster://...``).

The same invariants hold as with one process each, checked through public surfaces:

- each district's daily report equals the driver's tally (the demo's own verdict, and read
  again here from the other reporting replica);
- no double booking: on the bookings topic, no stall had two live bookings for one window;
- every draw once: one ``draw.completed`` per drawn window though both allocation replicas look
  for due draws, and the published draw verifies;
- every window boundary once: one ``window.opened`` and one ``window.closed`` per market window
  on the windows topic, by event id and by (market, date, window), and every window of the day
  has both;
- every event on every feed once: each district's feed and ``all``, read from each reporting
  replica, hold each event id once, and exactly the events the topics hold for that feed;
- the replicas really shared the work: each served the demo's calls (its ``/metrics``), each
  member of every consumer group holds partitions (its log), one allocation replica at a time
  relays the outbox, and the cluster's three masters all hold keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from contracts.seed import load_catalogue
from contracts.summaries import short_type
from contracts.topics import BOOKINGS, CATALOGUE, DEAD_LETTER, INSPECTION, WINDOWS
from stallctl import procs
from stallctl.runtime import SERVICES, pid_alive
from stallkit.auth import Role
from stallkit.clock import Clock
from stallkit.topics import read_to_end
from stalltest import demo_process
from stalltest.plugin import RedisClusterInfo
from stalltest.sse import SseReader
from stalltest.tokens import bearer, dev_token

#: The module's fixture runs a whole (reduced) day with eight service processes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRUBBED = (
    "KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "STALL_TOPIC_PREFIX", "STALL_REDIS_PREFIX",
    "STALL_DATA_DIR", "STALL_JWT_SECRET", "STALL_TOKEN_JWKS", "STALL_TOKEN_JWKS_FILE",
    "STALL_STAFF_SIGNING_KEY", "ALLOCATION_TOKEN_SIGNING_KEY", "STALL_MODE",
    "STALL_CLOCK_SPEED", "STALL_CLOCK_ANCHOR", "STALL_CLOCK_OFFSET_SECONDS", "STALL_LOG_LEVEL",
)  # fmt: skip
HELD = "press Ctrl-C to stop"
AGREED = "✓ 报表与演示记录一致"
#: The day played: the demo's whole day (35 markets, 1,489 stalls, 2,000 vendors at 200×; about
#: 6.5 min on 2 cores), or with ``STALL_SCALE_OUT_DAY=reduced`` two morning markets in two
#: districts and 120 vendors at 600× (about 3 min, the draws at 20:00 included).
FULL_DAY = os.environ.get("STALL_SCALE_OUT_DAY", "full") != "reduced"
DAY_ARGS = (
    ["--vendors", "2000", "--speed", "200"]
    if FULL_DAY
    else ["--markets", "XZ-06,DM-05", "--vendors", "120", "--speed", "600"]
)
DEMO_SECONDS = 1500.0 if FULL_DAY else 480.0
REPLICAS = 2
TOPICS = [CATALOGUE.name, BOOKINGS.name, WINDOWS.name, INSPECTION.name]
PORT_NAMES = ("broker", "redis", "allocation", "windows", "inspection", "reporting")
#: A booking no longer holds its stall after one of these.
ENDED = {"booking.cancelled", "booking.no_show", "booking.suspended_by_market"}
#: The route each service's replicas must both have served (the demo's main call to it).
MAIN_ROUTES = {
    "allocation": ("POST", "/v1/bookings"),
    "windows": ("GET", "/v1/markets/{market_id}/schedule"),
    "inspection": ("POST", "/v1/scans"),
    "reporting": ("GET", "/v1/reports/daily"),
}
ASSIGNED = re.compile(r"topic='([^']+)', partition=(\d+)")


@dataclass(frozen=True)
class Record:
    """One message of a topic: where it is and its envelope."""

    topic: str
    partition: int
    offset: int
    envelope: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.envelope["id"])

    @property
    def type(self) -> str:
        return short_type(str(self.envelope["type"]))

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.envelope["data"]
        return data


@dataclass
class ScaledDay:
    """The demo run with two replicas on the cluster, and what it left."""

    data_dir: Path
    out: Path
    ports: dict[str, int]
    cluster: RedisClusterInfo
    redis_prefix: str
    proc: subprocess.Popen[bytes] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    day_seconds: float = 0.0

    def text(self) -> str:
        return demo_process.output_text(self.out)

    def diagnostics(self) -> str:
        return demo_process.diagnostics(self.out, self.data_dir, 15)

    def child_pids(self) -> set[int]:
        return demo_process.child_pids(self.data_dir)

    def replicas(self, service: str) -> list[str]:
        return [str(u) for u in self.summary["urls"]["replicas"][service]]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    def clock(self) -> Clock:
        c = self.summary["clock"]
        return Clock(offset_seconds=c["offset"], speed=c["speed"], anchor=c["anchor"])

    def admin(self) -> dict[str, str]:
        now = self.clock().now()
        return bearer(dev_token(Role.ADMIN, "scale-admin", now=now, ttl_seconds=86400 * 30))

    def kill(self) -> None:
        demo_process.kill(self.proc, self.data_dir)


@pytest.fixture(scope="module")
def scaled(
    redis_cluster: RedisClusterInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScaledDay]:
    """``stallctl demo --replicas 2`` on the session's Redis Cluster, held for the module."""
    base = tmp_path_factory.mktemp("scale-out")
    day = ScaledDay(
        data_dir=base / "day",
        out=base / "day.out",
        ports=dict(zip(PORT_NAMES, procs.free_ports(6), strict=True)),
        cluster=redis_cluster,
        redis_prefix=f"scale{uuid.uuid4().hex[:8]}:",
    )
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": redis_cluster.cluster_url,
        # the session's cluster may serve other tests too: keys of our own
        "STALL_REDIS_PREFIX": day.redis_prefix,
        # consumers log their partition assignments at INFO
        "STALL_LOG_LEVEL": "INFO",
    }
    args = [
        sys.executable, "-m", "stallctl.cli", "demo", *DAY_ARGS,
        "--replicas", str(REPLICAS), "--data-dir", str(day.data_dir),
        "--summary-json", str(base / "summary.json"), "--ready-timeout", "150",
    ]  # fmt: skip
    for name, port in day.ports.items():
        args += [f"--{name}-port", str(port)]
    try:
        started = time.monotonic()
        with day.out.open("ab") as out:
            day.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
            )
        deadline = started + DEMO_SECONDS
        while HELD not in day.text():
            if day.proc.poll() is not None:
                pytest.fail(f"the demo exited with {day.proc.returncode}\n" + day.diagnostics())
            if time.monotonic() > deadline:
                pytest.fail("the demo did not finish its day\n" + day.diagnostics())
            time.sleep(0.5)
        day.day_seconds = time.monotonic() - started
        day.summary = json.loads((base / "summary.json").read_text("utf-8"))
        yield day
        children = day.child_pids()
        assert len(children) == REPLICAS * len(SERVICES) + 1  # and the broker; Redis is not ours
        day.proc.send_signal(signal.SIGINT)
        assert day.proc.wait(60) == 0, day.diagnostics()
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in children if pid_alive(p)], "children left after Ctrl-C"
        assert not list((day.data_dir / "run").glob("*.pid"))
    finally:
        day.kill()


async def read_topics(bootstrap: str, topics: list[str]) -> list[Record]:
    """Every message of ``topics`` from the beginning to their ends now (no group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            await consumer.topics()
            tps = [
                TopicPartition(t, p)
                for t in topics
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            read = await read_to_end(consumer, tps)
    finally:
        await consumer.stop()
    return [
        Record(r.topic, r.partition, r.offset, json.loads(r.value or b"{}"))
        for tp in tps
        for r in read[tp]
    ]


def districts_of(records: list[Record]) -> dict[str, str | None]:
    """The district each event belongs to (as reporting files it), by event id."""
    market_district: dict[str, str] = {}
    for r in records:
        if r.type == "catalogue.market.changed":
            market_district[r.data["market"]["id"]] = r.data["market"]["district"]
    found: dict[str, str | None] = {}
    for r in records:
        district = r.data.get("district")
        if r.type == "catalogue.market.changed":
            district = r.data["market"]["district"]
        found[r.id] = district or market_district.get(str(r.envelope.get("marketid")))
    return found


async def read_feed(
    client: httpx.AsyncClient, url: str, feed: str, headers: dict[str, str], wanted: set[str]
) -> list[dict[str, Any]]:
    """A feed from its start, until every event id of ``wanted`` came (or a minute passed)."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    async with client.stream(
        "GET", f"{url}/v1/feeds/{feed}/events", params={"from": "start"}, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        reader = SseReader(response)
        deadline = time.monotonic() + 60
        while not wanted <= seen and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                event = await reader.next(timeout=max(0.1, deadline - time.monotonic()))
                if event is None:
                    break
                assert event.event != "dropped", event.data
                entry = event.json()
                entries.append(entry)
                seen.add(entry["event_id"])
    return entries


def planned_districts(scaled: ScaledDay) -> set[str]:
    """The districts of the day's markets."""
    catalogue = load_catalogue()
    markets = set(scaled.summary["markets"])
    return {m.district.value for m in catalogue.markets if m.id in markets}


def test_the_reports_agree_with_the_tally_on_the_cluster(scaled: ScaledDay) -> None:
    """The demo's verdict, each district's figures read again from every reporting replica,
    no rule breached, and the data really on the cluster's three masters."""
    text = scaled.text()
    assert AGREED in text, scaled.diagnostics()
    assert scaled.summary["breaches"] == []
    assert not (scaled.data_dir / "logs" / "redis.log").exists()  # the cluster, not our own
    assert set(scaled.summary["districts"]) == planned_districts(scaled)
    for district, seen in scaled.summary["districts"].items():
        assert seen["mismatches"] == [], (district, seen)
        assert seen["tally"]["bookings"] > 0
        assert seen["tally"]["check_ins"] > 0
    with httpx.Client(timeout=30) as client:
        for url in scaled.replicas("reporting"):
            for district, seen in scaled.summary["districts"].items():
                answer = client.get(
                    f"{url}/v1/reports/daily",
                    params={"district": district, "date": scaled.summary["date"]},
                    headers=scaled.admin(),
                )
                assert answer.status_code == 200, answer.text
                total = answer.json()["total"]
                for name in ("bookings", "check_ins", "no_shows", "cancellations", "scans"):
                    assert total[name] == seen["tally"][name], (url, district, name)
    for port in scaled.cluster.ports:  # every master holds some of the day's keys
        node = Redis(port=port)
        try:
            keys = sum(1 for _ in node.scan_iter(match=f"{scaled.redis_prefix}*", count=1000))
        finally:
            node.close()
        assert keys > 0, f"no key on the master at {port}"


async def test_no_stall_was_booked_twice_for_a_window(scaled: ScaledDay) -> None:
    """On the bookings topic (one market's events in order on one partition), a booking is
    created only for a stall that no live booking holds for that window, each booking once."""
    records = await read_topics(scaled.bootstrap, [BOOKINGS.name])
    records.sort(key=lambda r: (r.partition, r.offset))
    live: dict[tuple[str, str, str], str] = {}
    created: Counter[str] = Counter()
    created_ids: set[str] = set()
    doubles: list[str] = []
    for r in records:
        if r.type == "booking.created":
            if r.id in created_ids:
                continue  # the same event delivered twice is at-least-once, not a booking
            created_ids.add(r.id)
            created[r.data["booking_id"]] += 1
            slot = (r.data["stall_id"], r.data["date"], r.data["window_id"])
            if slot in live and live[slot] != r.data["booking_id"]:
                doubles.append(f"{slot}: {live[slot]} and {r.data['booking_id']}")
            live[slot] = r.data["booking_id"]
        elif r.type in ENDED:
            slot = (r.data["stall_id"], r.data["date"], r.data["window_id"])
            if live.get(slot) == r.data["booking_id"]:
                del live[slot]
    assert created, "no booking on the topic"
    assert doubles == []
    assert [b for b, n in created.items() if n > 1] == []
    # every booking the demo was answered for is on the topic
    answered = {b for ids in scaled.summary["bookings"].values() for b in ids}
    assert answered <= set(created)


async def test_each_draw_ran_once_across_the_allocation_replicas(scaled: ScaledDay) -> None:
    """Both allocation replicas look for due draws: each drawn window has one draw.completed
    (one event id), its winners were booked, and its published draw re-runs to its result."""
    records = await read_topics(scaled.bootstrap, [BOOKINGS.name])
    completed: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r in records:
        if r.type == "draw.completed":
            completed[(r.data["market_id"], r.data["date"], r.data["window_id"])].add(r.id)
    draws = scaled.summary["draws"]
    assert {d["district"] for d in draws} == planned_districts(scaled)
    for draw in draws:
        key = (draw["market_id"], draw["date"], draw["window_id"])
        assert len(completed[key]) == 1, (key, completed[key])
        assert draw["verified"] is True, draw
        assert draw["statuses"].get("won") == draw["awards"] > 0, draw


def test_the_offices_feeds_stayed_whole_while_followed_across_replicas(
    scaled: ScaledDay,
) -> None:
    """Each office kept its feed open all day on the reporting replicas (resuming on the next
    one when a stream ended): what it received is its log, each entry once, in order."""
    feeds = scaled.summary["feeds"]
    assert set(feeds) == planned_districts(scaled)
    for district, feed in feeds.items():
        assert feed["matches"] is True, (district, feed)
        assert feed["received"] == feed["distinct"] > 0


async def test_every_window_boundary_was_published_once(scaled: ScaledDay) -> None:
    """One window.opened and one window.closed per market window on the topic (no second
    message, not even with the same event id), and every window of the day has both."""
    records = await read_topics(scaled.bootstrap, [WINDOWS.name])
    by_window: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for r in records:
        if r.type in ("window.opened", "window.closed"):
            key = (r.data["market_id"], r.data["date"], r.data["window_id"], r.type)
            by_window[key].append(r.id)
    twice = {k: ids for k, ids in by_window.items() if len(ids) > 1}
    assert twice == {}
    day = scaled.summary["date"]
    instances = []
    async with httpx.AsyncClient(timeout=30) as client:
        for market in scaled.summary["markets"]:
            answer = await client.get(
                f"{scaled.replicas('windows')[1]}/v1/markets/{market}/timeline",
                params={"date": day},
                headers=scaled.admin(),
            )
            assert answer.status_code == 200, answer.text
            instances += answer.json()
    assert len(instances) >= len(scaled.summary["markets"])
    for instance in instances:
        assert instance["state"] == "closed", instance
        for kind in ("window.opened", "window.closed"):
            key = (instance["market_id"], day, instance["window_id"], kind)
            assert len(by_window[key]) == 1, (key, by_window[key])


async def test_every_event_is_on_its_feeds_once_from_every_replica(scaled: ScaledDay) -> None:
    """Each district's feed and ``all``, read from the start from each reporting replica: each
    event id once, every event the topics held for it, and nothing the topics do not hold."""
    before = await read_topics(scaled.bootstrap, TOPICS)
    district = districts_of(before)
    expected: dict[str, set[str]] = {"all": {r.id for r in before}}
    for name in scaled.summary["districts"]:
        expected[name] = {r.id for r in before if district[r.id] == name}
        assert expected[name], name
    feeds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:
        for url in scaled.replicas("reporting"):
            for feed, wanted in expected.items():
                feeds[url, feed] = await read_feed(client, url, feed, scaled.admin(), wanted)
    after = await read_topics(scaled.bootstrap, TOPICS)
    on_topics = {r.id for r in after}
    district = districts_of(after)
    for (url, feed), entries in feeds.items():
        ids = [e["event_id"] for e in entries]
        repeated = [i for i, n in Counter(ids).items() if n > 1]
        assert repeated == [], (url, feed, repeated[:10])
        assert len({e["id"] for e in entries}) == len(entries)
        missing = expected[feed] - set(ids)
        assert missing == set(), (url, feed, len(missing), sorted(missing)[:10])
        unknown = [
            (e["type"], e["market_id"], e["time"])
            for e in entries
            if e["event_id"] not in on_topics
        ]
        assert unknown == [], (
            url,
            feed,
            len(unknown),
            Counter(t for t, _, _ in unknown),
            unknown[:5],
        )
        if feed != "all":
            assert {district[i] for i in ids} == {feed}, (url, feed)
            assert {e["district"] for e in entries} == {feed}


async def test_no_consumer_dead_lettered_anything(scaled: ScaledDay) -> None:
    """Whichever replica a market's partitions went to, every event could be processed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=scaled.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(DEAD_LETTER.name, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        batch = await consumer.getmany(tp, timeout_ms=2000)
    finally:
        await consumer.stop()
    dead = [
        {k: bytes(v or b"").decode(errors="replace")[:200] for k, v in r.headers or ()}
        for r in batch.get(tp, ())
    ]
    assert dead == []


def _metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_both_replicas_of_every_service_did_the_work(scaled: ScaledDay) -> None:
    """Each replica served the demo's main calls to its service, each member of a consumer group
    holds partitions of its topics (none twice), and one allocation replica relays the outbox."""
    served: dict[str, dict[str, float]] = {}
    lease_held: list[float] = []
    with httpx.Client(timeout=10) as client:
        for svc in SERVICES:
            method, route = MAIN_ROUTES[svc]
            for url in scaled.replicas(svc):
                text = client.get(f"{url}/metrics").text
                served.setdefault(svc, {})[url] = sum(
                    value
                    for labels, value in _metric_samples(text, "http_requests_total")
                    if labels["method"] == method
                    and labels["route"] == route
                    and labels["status"].startswith("2")
                )
                if svc == "allocation":
                    lease_held += [v for _, v in _metric_samples(text, "outbox_lease_held")]
    for svc, counts in served.items():
        assert len(counts) == REPLICAS, svc
        assert all(n > 0 for n in counts.values()), (svc, counts)
    bookings = served["allocation"]
    assert min(bookings.values()) >= 0.3 * sum(bookings.values()), bookings  # round robin
    assert sum(lease_held) == 1.0, lease_held  # one relay at a time

    for svc in SERVICES:
        held: dict[str, list[set[tuple[str, int]]]] = defaultdict(list)
        for k in range(1, REPLICAS + 1):
            name = svc if k == 1 else f"{svc}-{k}"
            last: dict[str, set[tuple[str, int]]] = {}
            log = scaled.data_dir / "logs" / f"{name}.log"
            for line in log.read_text(errors="replace").splitlines():
                if "assigned to partitions" not in line:
                    continue
                record = json.loads(line)
                parts = ASSIGNED.findall(record["message"])
                last[record["group_id"]] = {(t, int(p)) for t, p in parts}
            assert last, f"{name} logged no partition assignment"
            for group, partitions in last.items():
                held[group].append(partitions)
        for group, members in held.items():
            assert len(members) == REPLICAS, (svc, group)
            assert all(members), (svc, group, members)  # each member holds partitions
            assert not set.intersection(*members), (svc, group)  # none held twice
