"""Faults (issue 13): whatever dies or stalls, nothing acknowledged is lost and nothing is
applied twice.

One embedded system (``stallctl up`` on free ports, a fresh data folder, the services' clock on
a Monday 11:00) serves the module; each test takes a market of the seed of its own, so that
reporting's figures of that market are the test's alone. While vendors book Tuesday's windows
(``POST /v1/bookings``) and patrols scan stalls (``POST /v1/scans``), both retrying with the
same ``Idempotency-Key`` as a phone does until answered:

- each service is killed with SIGKILL and started again;
- redis-server is killed with SIGKILL and started again from its append-only file (the
  services are not restarted);
- the broker is frozen (SIGSTOP) for 30 s, then let go (SIGCONT): it keeps its data in memory,
  so it is not killed.

Afterwards every acknowledged booking exists, the bookings topic holds one ``booking.created``
event id per booking (the outbox may send an id twice, never a second id), every acknowledged
scan is on the inspection topic under one event id, a retry with the same key is answered with
the same booking or scan (200, a replay), and reporting's report and stats of the market count
each booking and scan once.

Last, a malformed message and an event of an unknown version (``...v99``) are published
straight to every topic a service consumes: every consumer dead-letters each with the reason
and goes on with the valid events that follow on the same partition.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from allocation.adapters.keys import Keys
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.model import Vendor
from contracts.catalogue import Category
from contracts.envelope import EVENT_TYPE_PREFIX, Envelope, Event
from contracts.events import (
    BookingCreated,
    MarketChanged,
    MarketSuspended,
    PriorityGroup,
    ScanRecorded,
    WindowClosingSoon,
)
from contracts.examples import example_of
from contracts.seed import load_catalogue
from contracts.topics import (
    DEAD_LETTER,
    DLQ_CONSUMER_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    TOPICS,
)
from stallctl.ports import SERVICES
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ, Clock
from stalltest.faults import (
    Answer,
    EmbeddedRun,
    Load,
    Request,
    behind,
    catch_up,
    end_offsets,
    eventually,
    header,
    post_until_answered,
    read_topic,
)
from stalltest.tokens import bearer, dev_token

#: The module starts the system once (about 15 s) and each test injects its fault under load.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Who consumes each topic (the README's table of services and topics).
CONSUMERS: dict[str, set[str]] = {
    "catalogue": {"windows", "inspection", "reporting"},
    "bookings": {"windows", "inspection", "reporting"},
    "windows": {"allocation", "inspection", "reporting"},
    "inspection": {"reporting"},
}
#: An event each consumer of the topic reads: its ``v99`` is published as the unknown version.
READ_BY_ALL: dict[str, type[Event]] = {
    "catalogue": MarketChanged,
    "bookings": BookingCreated,
    "windows": MarketSuspended,
    "inspection": ScanRecorded,
}
BROKER_OUTAGE_SECONDS = 30.0
#: Acknowledgements of each kind before a fault, and after the system is back.
ACKS_BEFORE, ACKS_AFTER = 4, 4
FAULT_HEADER = "x-fault-test"
_vendor_numbers = itertools.count(1)


def coming_monday(now: datetime) -> datetime:
    """11:00 on the first Monday after today (Asia/Shanghai), the services' time in the module:
    fixed, so that Tuesday is bookable (its draws are due) whatever day the tests run."""
    day = now.astimezone(MARKET_TZ).date() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 11, tzinfo=MARKET_TZ)


@dataclass(frozen=True)
class Plot:
    """A market of the seed that one test has to itself, and its free stalls on Tuesday."""

    market_id: str
    district: str
    #: (stall, window) pairs free on Tuesday: one booking each.
    slots: list[tuple[str, str]]


@dataclass
class Faults:
    """The module's running system and what the tests take from it."""

    run: EmbeddedRun
    clock: Clock
    monday: date
    plots: list[Plot]
    _headers: dict[tuple[str, str, str | None], dict[str, str]] = field(default_factory=dict)

    @property
    def tuesday(self) -> date:
        """The date of the windows booked."""
        return self.monday + timedelta(days=1)

    def take_plot(self) -> Plot:
        """A market no other test uses."""
        return self.plots.pop(0)

    def headers(self, role: Role, sub: str, district: str | None = None) -> dict[str, str]:
        """Authorization header of a development token on the services' clock."""
        key = (role.value, sub, district)
        if key not in self._headers:
            token = dev_token(role, sub, district=district, now=self.clock.now(), ttl_seconds=7200)
            self._headers[key] = bearer(token)
        return self._headers[key]

    @property
    def admin(self) -> dict[str, str]:
        """An administrator's header."""
        return self.headers(Role.ADMIN, "fault-test")

    async def vendors(self, count: int) -> list[str]:
        """``count`` new vendors of a priority group with every category verified, straight in
        allocation's Redis (registering through the API needs texted codes, rate-limited)."""
        redis = Redis.from_url(self.run.redis_url)
        store = VendorStore(redis, Keys(""))
        ids = []
        try:
            for _ in range(count):
                n = next(_vendor_numbers)
                vendor = Vendor(
                    id=f"vd_fault{n:05d}",
                    name=f"故障测试{n}",
                    phone=f"137{n:08d}",
                    priority_group=PriorityGroup.LAID_OFF,
                    categories=frozenset(Category),
                    health_certificate_expires=date(2099, 1, 1),
                    suspended_until=None,
                    created_at=self.clock.now(),
                )
                assert await store.create(vendor, "fault-test-without-password")
                ids.append(vendor.id)
        finally:
            await redis.aclose()
        return ids

    def bookings(self, plot: Plot, vendors: list[str]) -> Iterator[Request]:
        """One booking request per free slot of the plot, each by its own vendor."""
        url = self.run.url("allocation") + "/v1/bookings"
        for (stall_id, window_id), vendor_id in zip(plot.slots, vendors, strict=False):
            body = {"stall_id": stall_id, "date": self.tuesday.isoformat(), "window_id": window_id}
            headers = self.headers(Role.VENDOR, vendor_id)
            yield Request(f"fault-booking-{uuid.uuid4().hex}", url, headers, body)

    async def scans(self, plot: Plot, stalls: int = 4) -> Iterator[Request]:
        """Endless patrol scans of a few of the plot's stalls (vacant, no violation)."""
        codes = []
        async with httpx.AsyncClient(timeout=10.0) as client:
            for stall_id in sorted({s for s, _ in plot.slots})[:stalls]:
                answer = await client.get(
                    self.run.url("allocation") + f"/v1/admin/stalls/{stall_id}/code",
                    headers=self.admin,
                )
                assert answer.status_code == 200, answer.text
                codes.append(answer.json()["code"])
        url = self.run.url("inspection") + "/v1/scans"
        headers = self.headers(Role.PATROL, f"patrol-{plot.district}", plot.district)

        def endless() -> Iterator[Request]:
            for code in itertools.cycle(codes):
                body = {"code": code, "occupied": False}
                yield Request(f"fault-scan-{uuid.uuid4().hex}", url, headers, body)

        return endless()


def pick_plots(run: EmbeddedRun, tuesday: date, count: int) -> list[Plot]:
    """The ``count`` seeded markets with the most free (stall, window) pairs on Tuesday."""
    plots = []
    with httpx.Client(timeout=30.0) as client:
        markets = client.get(run.url("allocation") + "/v1/markets")
        assert markets.status_code == 200, markets.text
        for market in markets.json():
            answer = client.get(
                run.url("allocation") + f"/v1/markets/{market['id']}/availability",
                params={"date": tuesday.isoformat()},
            )
            assert answer.status_code == 200, answer.text
            slots = [
                (s, w["window_id"]) for w in answer.json()["windows"] for s in w["free_stalls"]
            ]
            plots.append(Plot(market["id"], market["district"], slots))
    plots.sort(key=lambda p: -len(p.slots))
    return plots[:count]


def readers(topics: list[str] | None = None) -> dict[str, list[str]]:
    """Each consumer group (a service's name) and the full names of the topics it reads."""
    groups: dict[str, list[str]] = {}
    for topic, consumers in CONSUMERS.items():
        if topics is None or topic in topics:
            for group in consumers:
                groups.setdefault(group, []).append(TOPICS[topic].name)
    return groups


@pytest.fixture(scope="module")
async def faults(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Faults]:
    """The embedded system, its clock on a Monday 11:00, seeded, the seed read by every
    consumer; stopped after the module."""
    target = coming_monday(datetime.now(UTC))
    offset = target.timestamp() - time.time()
    run = EmbeddedRun(tmp_path_factory.mktemp("faults") / "data", REPO_ROOT, os.environ)
    run.environ["STALL_CLOCK_OFFSET_SECONDS"] = repr(offset)
    try:
        run.start()
        monday = target.date()
        plots = pick_plots(run, monday + timedelta(days=1), 8)
        await catch_up(run.bootstrap, readers())
        yield Faults(run, Clock(offset_seconds=offset), monday, plots)
    finally:
        run.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client of the test's load (short timeouts: a stalled service is retried)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as c:
        yield c


# --- what every fault test checks ---------------------------------------------------------------


def decoded(records: list[Any]) -> list[dict[str, Any]]:
    """The records' envelopes (the malformed test messages left out)."""
    events = []
    for record in records:
        try:
            envelope = json.loads(record.value)
        except ValueError:
            continue
        if isinstance(envelope, dict) and isinstance(envelope.get("data"), dict):
            events.append(envelope)
    return events


async def events_of(faults: Faults, topic: str, event_type: str, market_id: str) -> list[Any]:
    """The events of one type about one market on a topic, from its start."""
    records = await read_topic(faults.run.bootstrap, TOPICS[topic].name)
    return [e for e in decoded(records) if e["type"] == event_type and e["marketid"] == market_id]


def by_field(events: list[dict[str, Any]], name: str) -> dict[str, set[str]]:
    """Event ids grouped by a field of the events' data."""
    grouped: dict[str, set[str]] = {}
    for event in events:
        grouped.setdefault(event["data"][name], set()).add(event["id"])
    return grouped


async def assert_once_on_topic(
    faults: Faults,
    topic: str,
    event_type: str,
    market_id: str,
    field: str,
    acknowledged: Iterable[str],
) -> None:
    """Each acknowledged id (``field`` of the events' data) is on ``topic`` under exactly one
    event id (the outbox may send an id twice, never a second id), and no other id is there."""
    wanted = set(acknowledged)

    async def found() -> dict[str, set[str]]:
        return by_field(await events_of(faults, topic, event_type, market_id), field)

    on_topic = await eventually(
        found,
        f"every acknowledged {field} on the {topic} topic: {sorted(wanted)}",
        done=lambda ids: set(ids) >= wanted,
    )
    assert set(on_topic) == wanted, f"{field}s nobody was told of: {on_topic}"
    twice = {k: ids for k, ids in on_topic.items() if len(ids) > 1}
    assert not twice, f"{field}s with more than one {event_type} event id: {twice}"


async def assert_nothing_lost_nothing_twice(
    faults: Faults, plot: Plot, client: httpx.AsyncClient, bookings: Load, scans: Load
) -> None:
    """Every acknowledged booking and scan exists once: in allocation, on the topics, in a
    replay of the same request, and in reporting's figures."""
    refused = [
        (a.request.body, a.status, a.body) for a in bookings.answers + scans.answers if not a.ok
    ]
    assert not refused, f"requests refused: {refused}"
    booked: dict[str, Answer] = {a.body["id"]: a for a in bookings.answers}
    assert len(booked) == len(bookings.answers), "two booking requests got the same booking"
    scanned: dict[str, Answer] = {a.body["scan_id"]: a for a in scans.answers}
    assert len(scanned) == len(scans.answers), "two scan requests got the same scan"

    allocation = faults.run.url("allocation")
    for booking_id, answer in booked.items():
        read = await client.get(
            f"{allocation}/v1/bookings/{booking_id}", headers=answer.request.headers
        )
        assert read.status_code == 200, f"acknowledged booking {booking_id} lost: {read.text}"
        assert read.json()["state"] == "booked", read.json()
    for booking_id, answer in booked.items():
        again = await post_until_answered(client, answer.request)
        assert (again.status, again.body.get("id")) == (200, booking_id), again.body
        assert again.headers.get("idempotent-replayed") == "true"
    for scan_id, answer in scanned.items():
        again = await post_until_answered(client, answer.request)
        assert (again.status, again.body.get("scan_id")) == (200, scan_id), again.body

    await assert_once_on_topic(
        faults, "bookings", BookingCreated.event_type(), plot.market_id, "booking_id", booked
    )
    await assert_once_on_topic(
        faults, "inspection", ScanRecorded.event_type(), plot.market_id, "scan_id", scanned
    )

    reporting = faults.run.url("reporting")
    params = {
        "from": faults.monday.isoformat(),
        "to": faults.tuesday.isoformat(),
        "market": plot.market_id,
    }

    async def counted() -> dict[str, Any]:
        report = await client.get(f"{reporting}/v1/reports", params=params, headers=faults.admin)
        assert report.status_code == 200, report.text
        total: dict[str, Any] = report.json()["total"]
        return {"bookings": total["bookings"], "scans": total["scans"]}

    total = await eventually(
        counted,
        f"reporting counts {len(booked)} bookings, {len(scanned)} scans of {plot.market_id}",
        done=lambda t: t["bookings"] >= len(booked) and t["scans"] >= len(scanned),
    )
    assert total == {"bookings": len(booked), "scans": len(scanned)}
    stats = await client.get(f"{reporting}/v1/stats", params={"market_id": plot.market_id})
    assert stats.status_code == 200, stats.text
    events = stats.json()["events"]
    assert events.get(BookingCreated.event_type()) == len(booked), events
    assert events.get(ScanRecorded.event_type()) == len(scanned), events


async def loads(
    faults: Faults, plot: Plot, client: httpx.AsyncClient, *, booking_pace: float = 1.0
) -> tuple[Load, Load]:
    """Bookings of the free slots of the plot (two clients, each one every ``booking_pace``
    seconds) and endless scans (two clients, each one every 0.5 s), started."""
    vendors = await faults.vendors(len(plot.slots))
    bookings = Load(client, faults.bookings(plot, vendors), workers=2, pace=booking_pace)
    bookings.start()
    scans = Load(client, await faults.scans(plot), workers=2, pace=0.5).start()
    return bookings, scans


async def after(load: Load, acks: int, since: int) -> None:
    """Wait for ``acks`` more acknowledgements than ``since``."""
    await load.acks(since + acks, timeout=120.0)


# --- the faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_killed_under_load_loses_nothing_and_applies_nothing_twice(
    faults: Faults, client: httpx.AsyncClient, service: str
) -> None:
    """SIGKILL of one service while bookings and scans go on, then the service started again."""
    await faults.run.wait_ready()
    plot = faults.take_plot()
    bookings, scans = await loads(faults, plot, client)
    await bookings.acks(ACKS_BEFORE)
    await scans.acks(ACKS_BEFORE)

    launch = faults.run.kill(service)
    faults.run.relaunch(launch)
    down = await faults.run.wait_ready([service])
    print(f"{service} killed and ready again after {down:.1f}s")
    await after(bookings, ACKS_AFTER, len(bookings.acked))
    await after(scans, ACKS_AFTER, len(scans.acked))
    await bookings.stop()
    await scans.stop()
    await faults.run.wait_ready()
    await assert_nothing_lost_nothing_twice(faults, plot, client, bookings, scans)


async def test_redis_killed_and_restarted_from_its_append_only_file_loses_no_booking(
    faults: Faults, client: httpx.AsyncClient
) -> None:
    """SIGKILL of redis-server under load, started again from its AOF; the services recover
    by themselves (same processes) and take bookings again."""
    await faults.run.wait_ready()
    services = {name: faults.run.pid(name) for name in SERVICES}
    plot = faults.take_plot()
    bookings, scans = await loads(faults, plot, client)
    await bookings.acks(ACKS_BEFORE)
    await scans.acks(ACKS_BEFORE)

    launch = faults.run.kill("redis")
    before_kill = {a.body["id"] for a in bookings.acked}
    failed = bookings.failed_attempts
    try:
        await bookings.until(lambda load: load.failed_attempts > failed, "a booking fails")
    finally:
        faults.run.relaunch(launch)
    back = await faults.run.wait_ready()
    print(f"services ready {back:.1f}s after redis-server came back")
    assert {name: faults.run.pid(name) for name in SERVICES} == services, "a service restarted"
    await after(bookings, ACKS_AFTER, len(bookings.acked))
    await after(scans, ACKS_AFTER, len(scans.acked))
    await bookings.stop()
    await scans.stop()
    await faults.run.wait_ready()
    assert before_kill <= {a.body["id"] for a in bookings.acked}
    await assert_nothing_lost_nothing_twice(faults, plot, client, bookings, scans)


async def test_broker_unreachable_for_30_s_bookings_go_on_and_reach_everyone_once(
    faults: Faults, client: httpx.AsyncClient
) -> None:
    """The broker frozen (SIGSTOP) for 30 s under load: bookings and scans are still
    acknowledged (outboxes in Redis); after SIGCONT each event reaches its topic and reporting
    once."""
    await faults.run.wait_ready()
    plot = faults.take_plot()
    # Slower bookings: the plot's free slots must last through the outage.
    bookings, scans = await loads(faults, plot, client, booking_pace=2.0)
    await bookings.acks(ACKS_BEFORE)
    await scans.acks(ACKS_BEFORE)

    faults.run.signal("broker", signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        await asyncio.sleep(BROKER_OUTAGE_SECONDS)  # the outage itself, not a wait for a state
    finally:
        faults.run.signal("broker", signal.SIGCONT)
    thawed = time.monotonic()
    during = [a for a in bookings.acked if frozen < a.at < thawed]
    scanned_during = [a for a in scans.acked if frozen < a.at < thawed]
    assert during, "no booking was acknowledged while the broker was unreachable"
    assert scanned_during, "no scan was acknowledged while the broker was unreachable"
    await after(bookings, ACKS_AFTER, len(bookings.acked))
    await after(scans, ACKS_AFTER, len(scans.acked))
    await bookings.stop()
    await scans.stop()
    back = await faults.run.wait_ready(timeout=180.0)
    print(
        f"{len(during)} bookings, {len(scanned_during)} scans acknowledged during the outage; "
        f"all ready {back:.1f}s after the load stopped"
    )
    await assert_nothing_lost_nothing_twice(faults, plot, client, bookings, scans)


# --- poison messages ------------------------------------------------------------------------------


def envelope_bytes(event: Event, *, event_type: str | None = None) -> tuple[str, bytes]:
    """(id, JSON) of ``event`` in an envelope from the test, with another type if given."""
    envelope = Envelope.wrap(event, source="/tests/faults", time=datetime.now(UTC))
    data = json.loads(envelope.model_dump_json())
    if event_type is not None:
        data["type"] = event_type
    return envelope.id, json.dumps(data).encode()


async def test_malformed_and_unknown_version_events_are_dead_lettered_and_consumers_go_on(
    faults: Faults, client: httpx.AsyncClient
) -> None:
    """On every consumed topic, a body that is no envelope and a ``v99`` event are
    dead-lettered by each consumer with the reason; the valid events after them on the same
    partition are processed (reporting counts them, inspection expects the booked vendor, each
    group commits past them)."""
    assert set(CONSUMERS) == set(TOPICS) - {"dead_letter"}, "a topic was added: who reads it?"
    await faults.run.wait_ready()
    plot = faults.take_plot()
    market = next(m for m in load_catalogue().markets if m.id == plot.market_id)
    window_id = plot.slots[0][1]
    reporting = faults.run.url("reporting")

    async def stats() -> dict[str, int]:
        answer = await client.get(f"{reporting}/v1/stats", params={"market_id": plot.market_id})
        assert answer.status_code == 200, answer.text
        events: dict[str, int] = answer.json()["events"]
        return events

    before = await stats()
    producer = AIOKafkaProducer(
        bootstrap_servers=faults.run.bootstrap, acks="all", enable_idempotence=False
    )
    await producer.start()
    poison: dict[str, tuple[str, str]] = {}  # token -> (topic, what it is)
    partitions: dict[str, tuple[int, int]] = {}  # topic -> (partition, last poison offset)
    try:
        for topic, model in READ_BY_ALL.items():
            malformed = f"malformed-{uuid.uuid4().hex}"
            unknown = f"v99-{uuid.uuid4().hex}"
            event = example_of(model).model_copy(update={"market_id": plot.market_id})
            _, body = envelope_bytes(
                event, event_type=f"{EVENT_TYPE_PREFIX}.{model.event_name}.v99"
            )
            for token, value in (
                (malformed, b'{"id": "' + malformed.encode() + b'", "type'),
                (unknown, body),
            ):
                meta = await producer.send_and_wait(
                    TOPICS[topic].name,
                    value,
                    key=plot.market_id.encode(),
                    headers=[(FAULT_HEADER, token.encode())],
                )
                partitions[topic] = (meta.partition, meta.offset)
            poison[malformed] = (topic, "malformed")
            poison[unknown] = (topic, "v99")
        # Valid events after them, on the same partitions: two straight from here ...
        closing = WindowClosingSoon(
            market_id=plot.market_id,
            date=faults.monday,
            window_id=window_id,
            district=plot.district,
            closes_at=faults.clock.now() + timedelta(minutes=15),
        )
        for event in (MarketChanged(market_id=plot.market_id, market=market), closing):
            _, body = envelope_bytes(event)
            await producer.send_and_wait(
                TOPICS[event.topic].name, body, key=plot.market_id.encode()
            )
    finally:
        await producer.stop()
    # ... and two through the services: a booking and a scan.
    (vendor_id,) = await faults.vendors(1)
    (booking,) = list(itertools.islice(faults.bookings(plot, [vendor_id]), 1))
    booked = await post_until_answered(client, booking)
    assert booked.status == 201, booked.body
    scan = next(await faults.scans(plot, stalls=1))
    scanned = await post_until_answered(client, scan)
    assert scanned.status == 201, scanned.body

    async def dead_letters() -> dict[str, list[tuple[str, str, str]]]:
        """(consumer, source topic, reason) of each poison message's dead letters."""
        records = await read_topic(faults.run.bootstrap, DEAD_LETTER.name)
        found: dict[str, list[tuple[str, str, str]]] = {token: [] for token in poison}
        for record in records:
            token = header(record, FAULT_HEADER)
            if token in poison:
                found[token].append(
                    (
                        header(record, DLQ_CONSUMER_HEADER),
                        header(record, DLQ_SOURCE_TOPIC_HEADER),
                        header(record, DLQ_REASON_HEADER),
                    )
                )
        return found

    found = await eventually(
        dead_letters,
        "every consumer dead-letters every poison message",
        done=lambda found: all(
            len(found[token]) >= len(CONSUMERS[topic]) for token, (topic, _) in poison.items()
        ),
    )
    for token, (topic, what) in poison.items():
        consumers = sorted(consumer.split("/")[0] for consumer, _, _ in found[token])
        assert consumers == sorted(CONSUMERS[topic]), (topic, what, found[token])
        for _, source, reason in found[token]:
            assert source == TOPICS[topic].name, (topic, what, found[token])
            expected = "bad envelope" if what == "malformed" else ".v99"
            assert expected in reason, (topic, what, reason)

    def counted(events: dict[str, int]) -> bool:
        grown = {
            t: events.get(t, 0) - before.get(t, 0)
            for t in (
                MarketChanged.event_type(),
                WindowClosingSoon.event_type(),
                BookingCreated.event_type(),
                ScanRecorded.event_type(),
            )
        }
        return all(n == 1 for n in grown.values())

    await eventually(stats, "reporting counts the valid events after the poison", done=counted)

    inspection = faults.run.url("inspection")

    async def inspection_went_on() -> bool:
        answer = await client.get(
            f"{inspection}/v1/stalls/{booking.body['stall_id']}/expected",
            params={"date": faults.tuesday.isoformat(), "window_id": booking.body["window_id"]},
            headers=faults.admin,
        )
        return answer.status_code == 200 and answer.json()["vendor_id"] == vendor_id

    await eventually(inspection_went_on, "inspection projects the booking after the poison")

    # The valid events are on the poisoned partitions; every group commits past them.
    through_services = {"bookings": booked.body["id"], "inspection": scanned.body["scan_id"]}
    for topic, entity_id in through_services.items():
        records = await read_topic(faults.run.bootstrap, TOPICS[topic].name)
        where = {r.partition for r in records if entity_id.encode() in r.value}
        assert where == {partitions[topic][0]}, (topic, where, partitions[topic])
    topics = {TOPICS[t].name: p for t, (p, _) in partitions.items()}
    ends = {
        tp: end
        for tp, end in (await end_offsets(faults.run.bootstrap, topics)).items()
        if topics[tp[0]] == tp[1]
    }

    async def late() -> dict[str, dict[str, int]]:
        return await behind(faults.run.bootstrap, readers(list(partitions)), ends)

    await eventually(late, "every consumer group commits past the poison", done=lambda x: not x)
    await faults.run.wait_ready()
