"""District feeds as Server-Sent Events against the real broker and redis-server: events
published to the topics reach SSE clients in log order, a client resumes with Last-Event-ID
without gap or duplicate (also across a restart of the service), districts see only their own
feed, filters, expired positions, and a stalled client dropped without holding up 100 others."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from faststream.kafka import KafkaBroker
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from contracts.catalogue import District
from contracts.envelope import Event
from contracts.events import ScanOutcome, ScanRecorded, WindowClosed, WindowOpened
from reporting.adapters.feed_log import FeedLog, id_before
from reporting.app import create_app
from reporting.config import ReportingSettings
from stallkit.auth import AUDIENCES, Role
from stallkit.messaging import publish_event
from stalltest.plugin import KEEP_ALIVE_SECONDS
from stalltest.sse import SseEvent, SseReader
from stalltest.tokens import bearer, dev_token

pytestmark = pytest.mark.integration

Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
Eventually = Callable[..., Awaitable[Any]]

DAY = date(2026, 12, 7)
XZ = dev_token(Role.DISTRICT, "xz-office", district="xiangzhou")
ADMIN = dev_token(Role.ADMIN, "city-admin")
#: Long enough for the reporting consumer to join its group (~5 s) and catch up.
FIRST = 60.0


def opened(market_id: str, n: int, district: District = District.XIANGZHOU) -> WindowOpened:
    """The n-th distinct window opening of a market."""
    return WindowOpened(
        market_id=market_id,
        date=DAY + timedelta(days=n),
        window_id="evening",
        district=district,
        closes_at=datetime(2026, 12, 7, 14, 30, tzinfo=UTC) + timedelta(days=n),
    )


def closed(market_id: str, n: int) -> WindowClosed:
    return WindowClosed(
        market_id=market_id, date=DAY + timedelta(days=n), window_id="evening",
        district=District.XIANGZHOU,
    )  # fmt: skip


def scanned(market_id: str, n: int) -> ScanRecorded:
    return ScanRecorded(
        market_id=market_id, district=District.XIANGZHOU, scan_id=f"sc_{market_id}_{n}",
        stall_id=f"{market_id}-A001", outcome=ScanOutcome.COMPLIANT, patrol_id="p-xz-1",
    )  # fmt: skip


def fast(settings: ReportingSettings, **overrides: Any) -> ReportingSettings:
    """The test's settings with a 1 s heartbeat (idle streams show it) and ``overrides``."""
    return settings.model_copy(update={"feed_heartbeat_seconds": 1.0, **overrides})


class Publisher:
    """Publishes events to the service's topics, remembering their envelope ids in order."""

    def __init__(self, broker: KafkaBroker, settings: ReportingSettings):
        self.broker = broker
        self.settings = settings

    async def __call__(self, event: Event) -> str:
        envelope = await publish_event(self.broker, self.settings, event, time=datetime.now(UTC))
        return envelope.id

    async def many(self, events: Sequence[Event]) -> list[str]:
        return [await self(event) for event in events]


def event_ids(events: Sequence[SseEvent]) -> list[str]:
    """The envelope ids of the entries sent (the ``event_id`` in each event's data)."""
    return [e.json()["event_id"] for e in events]


@contextlib.asynccontextmanager
async def running(app: Any, *, send_buffer: int | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` until the block ends (the ``serve`` fixture stops its apps only after the
    test). ``send_buffer`` caps the kernel send buffer of the server's connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:  # accepted connections inherit it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_config=None, access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    try:
        async with asyncio.timeout(30):
            while True:
                assert not task.done(), "the server stopped before it was ready"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield client
    finally:
        await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


@contextlib.asynccontextmanager
async def feed(
    client: httpx.AsyncClient,
    district: str,
    token: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SseReader]:
    """An open SSE stream of a feed (closed, like a client going away, when the block ends)."""
    async with client.stream(
        "GET",
        f"/v1/feeds/{district}/events",
        params=params,
        headers={**bearer(token), **(headers or {})},
        timeout=httpx.Timeout(10.0, read=FIRST),
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """A sample of the service's /metrics (0 when absent)."""
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_a_client_resumes_with_last_event_id_without_gap_or_duplicate_also_across_a_restart(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    redis_client: Redis,
    eventually: Eventually,
) -> None:
    settings = fast(reporting_settings)
    send = Publisher(publisher, settings)
    log = FeedLog(redis_client, settings, timedelta(days=1))

    async def logged(event_id: str) -> bool:
        return any(e.event_id == event_id for e in await log.read("xiangzhou", None))

    async with running(create_app(settings, configure_logs=False)) as client:
        async with feed(client, "xiangzhou", XZ, params={"from": "start"}) as stream:
            first = await send.many([opened("XZ-01", n) for n in range(3)])
            got = await stream.take(3, timeout=FIRST)
        assert event_ids(got) == first
        assert [e.event for e in got] == ["window.opened"] * 3
        assert [e.json()["id"] for e in got] == [e.id for e in got]  # data says its position
        assert all(id_before(a.id or "", b.id or "") for a, b in itertools.pairwise(got))
        assert got[0].json()["district"] == "xiangzhou"
        assert got[0].json()["event"]["data"]["market_id"] == "XZ-01"

        # Away: three more are logged; back with the last id it got, it gets exactly those.
        missed = await send.many([opened("XZ-01", n) for n in range(3, 6)])
        await eventually(lambda: logged(missed[-1]))
        async with feed(client, "xiangzhou", XZ, headers={"Last-Event-ID": got[-1].id or ""}) as s:
            assert event_ids(await s.take(3)) == missed
            live = await send(opened("XZ-01", 6))
            assert event_ids(await s.take(1)) == [live]  # then live ones, no duplicate between
            last = s.last_event_id
        assert last is not None

    # The service is stopped; what is published meanwhile waits in Kafka for the new instance.
    while_down = await send.many([opened("XZ-01", n) for n in range(7, 10)])
    client = await serve(create_app(settings, configure_logs=False))
    async with feed(client, "xiangzhou", XZ, params={"last_event_id": last}) as stream:
        assert event_ids(await stream.take(3, timeout=FIRST)) == while_down
        live = await send(opened("XZ-01", 10))
        assert event_ids(await stream.take(1)) == [live]
    # With neither Last-Event-ID nor ?from=start a client starts now: only new entries.
    async with feed(client, "xiangzhou", XZ) as stream:
        await asyncio.sleep(1.5)  # idle: a heartbeat (a comment line) keeps the stream open
        fresh = await send(opened("XZ-01", 11))
        assert event_ids(await stream.take(1)) == [fresh]
        assert stream.comments >= 1


async def test_districts_read_their_own_feed_administrators_any_and_all(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
) -> None:
    settings = fast(reporting_settings)
    send = Publisher(publisher, settings)
    client = await serve(create_app(settings, configure_logs=False))
    url = "/v1/feeds/{}/events"

    async def problem(path: str, token: str | None, status: int, code: str, **kw: Any) -> None:
        headers = {**(bearer(token) if token else {}), **kw.pop("headers", {})}
        response = await client.get(path, headers=headers, **kw)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code

    doumen = dev_token(Role.DISTRICT, "dm-office", district="doumen")
    patrol = dev_token(Role.PATROL, "p-xz-1", district="xiangzhou")
    vendor = dev_token(Role.VENDOR, "vd_1", audience=AUDIENCES)
    await problem(url.format("xiangzhou"), doumen, 403, "other_district")
    await problem(url.format("all"), XZ, 403, "other_district")
    await problem(url.format("xiangzhou"), patrol, 403, "forbidden")
    await problem(url.format("xiangzhou"), vendor, 403, "forbidden")
    await problem(url.format("xiangzhou"), None, 401, "unauthorized")
    await problem(url.format("atlantis"), ADMIN, 422, "validation_failed")
    bad_id = {"Last-Event-ID": "yesterday"}
    await problem(url.format("xiangzhou"), XZ, 400, "invalid_last_event_id", headers=bad_id)
    await problem(
        url.format("xiangzhou"), XZ, 400, "invalid_last_event_id", params={"last_event_id": "1-"}
    )
    ahead = {"Last-Event-ID": "99999999999999-0"}
    await problem(url.format("xiangzhou"), XZ, 422, "feed_position_ahead", headers=ahead)
    unknown = {"types": "window.opened,booking.teleported"}
    await problem(url.format("xiangzhou"), XZ, 422, "validation_failed", params=unknown)
    await problem(url.format("xiangzhou"), XZ, 422, "validation_failed", params={"markets": "x"})

    async with (
        feed(client, "all", ADMIN, params={"from": "start"}) as city,
        feed(client, "xiangzhou", XZ, params={"from": "start"}) as mine,
        feed(client, "doumen", ADMIN, params={"from": "start"}) as theirs,
    ):
        xz = await send(opened("XZ-01", 1))
        dm = await send(opened("DM-01", 1, District.DOUMEN))
        both = await city.take(2, timeout=FIRST)
        assert sorted(event_ids(both)) == sorted([xz, dm])
        assert event_ids(await mine.take(1)) == [xz]
        assert event_ids(await theirs.take(1)) == [dm]
        xz2 = await send(opened("XZ-01", 2))  # the next one in Xiangzhou: Doumen's was not in it
        assert event_ids(await mine.take(1)) == [xz2]
        assert event_ids(await city.take(1)) == [xz2]
        assert await metric(client, "reporting_feed_subscribers", district="xiangzhou") == 1

    async def all_gone() -> bool:
        counts = [
            await metric(client, "reporting_feed_subscribers", district=name)
            for name in ("xiangzhou", "doumen", "all")
        ]
        return counts == [0, 0, 0]

    await eventually(all_gone)  # clients that went away hold nothing


async def test_filters_by_type_and_market_in_the_backlog_and_live(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    redis_client: Redis,
    eventually: Eventually,
) -> None:
    settings = fast(reporting_settings)
    send = Publisher(publisher, settings)
    log = FeedLog(redis_client, settings, timedelta(days=1))
    client = await serve(create_app(settings, configure_logs=False))

    def mixed(n: int) -> list[Event]:
        return [opened("XZ-01", n), scanned("XZ-01", n), closed("XZ-01", n),
                opened("XZ-02", n), scanned("XZ-02", n), closed("XZ-02", n)]  # fmt: skip

    backlog = await send.many(mixed(1))
    await eventually(lambda: _count(log, 6))
    filters = {
        "types": {"types": "window.opened,window.closed"},
        "market": {"markets": "XZ-02"},
        "both": {"types": "window.closed", "markets": "XZ-02,XZ-03"},
    }
    async with contextlib.AsyncExitStack() as stack:
        streams = {
            name: await stack.enter_async_context(
                feed(client, "xiangzhou", XZ, params={**query, "from": "start"})
            )
            for name, query in filters.items()
        }
        live = await send.many(mixed(2))
        # The feed has no order across markets (their events are consumed side by side): the
        # fence goes once the live events are in, so that it is the last entry.
        await eventually(lambda: _count(log, 12))
        fence = await send(closed("XZ-02", 3))  # wanted by every filter: the last one read
        received = {
            name: await stream.until(lambda got: bool(got) and event_ids(got)[-1] == fence)
            for name, stream in streams.items()
        }
    entries = await log.read("xiangzhou", None)
    assert [e.event_id for e in entries if e.event_id in backlog + live + [fence]] == [
        e.event_id for e in entries
    ]
    wanted = {
        "types": [e for e in entries if e.type in ("window.opened", "window.closed")],
        "market": [e for e in entries if e.market_id == "XZ-02"],
        "both": [e for e in entries if e.type == "window.closed" and e.market_id == "XZ-02"],
    }
    for name, got in received.items():
        assert [e.id for e in got] == [e.id for e in wanted[name]], name
    assert {e.event for e in received["types"]} == {"window.opened", "window.closed"}
    assert len(received["both"]) == 3  # one from the backlog, one live, the fence


async def _count(log: FeedLog, n: int) -> bool:
    return len(await log.read("xiangzhou", None)) >= n


async def test_a_position_past_the_retention_is_410_not_a_silent_gap(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    redis_client: Redis,
    eventually: Eventually,
) -> None:
    retention = timedelta(seconds=1.5)
    settings = fast(reporting_settings, feed_retention_days=retention / timedelta(days=1))
    send = Publisher(publisher, settings)
    log = FeedLog(redis_client, settings, retention)
    client = await serve(create_app(settings, configure_logs=False))
    async with feed(client, "xiangzhou", XZ, params={"from": "start"}) as stream:
        await send.many([opened("XZ-01", 0), opened("XZ-01", 1)])
        seen = await stream.take(2, timeout=FIRST)
    await asyncio.sleep(retention.total_seconds() + 0.5)  # both entries are now past it
    later = await send(opened("XZ-01", 2))

    async def trimmed() -> bool:
        return [e.event_id for e in await log.read("xiangzhou", None)] == [later]

    await eventually(trimmed)
    # Saw only the first: the second was trimmed unseen, so resuming would be a silent gap.
    gone = await client.get(
        "/v1/feeds/xiangzhou/events", headers={**bearer(XZ), "Last-Event-ID": seen[0].id or ""}
    )
    assert gone.status_code == 410, gone.text
    assert gone.headers["content-type"].startswith("application/problem+json")
    assert gone.json()["code"] == "feed_position_expired"
    assert gone.json()["oldest_id"] == (await log.read("xiangzhou", None))[0].id
    # Saw both: nothing was missed, the stream goes on with the next entry.
    async with feed(client, "xiangzhou", XZ, headers={"Last-Event-ID": seen[1].id or ""}) as s:
        assert event_ids(await s.take(1)) == [later]


async def test_a_stalled_client_is_dropped_without_holding_up_a_hundred_live_ones(
    reporting_settings: ReportingSettings, publisher: KafkaBroker
) -> None:
    n_live, burst_size = 100, 350
    settings = fast(reporting_settings, feed_queue_size=32)
    send = Publisher(publisher, settings)
    subscribers = "reporting_feed_subscribers"
    dropped = "reporting_feed_dropped_total"
    # Loopback sockets buffer megabytes: with small buffers a client that stops reading stops
    # the server's writes after some 200 entries, and then its queue of 32 fills.
    async with (
        running(create_app(settings, configure_logs=False), send_buffer=16 * 1024) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        url, timeout = "/v1/feeds/xiangzhou/events", httpx.Timeout(10.0, read=FIRST)
        many = httpx.AsyncClient(
            base_url=client.base_url, timeout=timeout, limits=httpx.Limits(max_connections=None)
        )
        small = httpx.AsyncHTTPTransport(
            socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)]
        )
        slow = httpx.AsyncClient(base_url=client.base_url, timeout=timeout, transport=small)
        stack.push_async_callback(many.aclose)
        stack.push_async_callback(slow.aclose)
        live = []
        for _ in range(n_live):
            response = await stack.enter_async_context(many.stream("GET", url, headers=bearer(XZ)))
            assert response.status_code == 200
            live.append(SseReader(response))
        stalled = await stack.enter_async_context(slow.stream("GET", url, headers=bearer(XZ)))
        assert await metric(client, subscribers, district="xiangzhou") == n_live + 1

        primer = await send(opened("XZ-01", 0))  # everyone gets it once the consumer has joined
        for reader in live:
            assert event_ids(await reader.take(1, timeout=FIRST)) == [primer]

        loop = asyncio.get_running_loop()
        started = loop.time()
        finished: list[float] = []

        async def read_burst(reader: SseReader) -> list[SseEvent]:
            got = await reader.take(burst_size, timeout=45)
            finished.append(loop.time() - started)
            return got

        reading = [asyncio.create_task(read_burst(reader)) for reader in live]
        burst = await send.many([opened("XZ-01", n) for n in range(1, burst_size + 1)])
        results = await asyncio.gather(*reading)
        drops_when_done = await metric(
            client, dropped, district="xiangzhou", reason="slow_consumer"
        )
        for got in results:
            assert event_ids(got) == burst  # all of it, in order, to every live client
        assert drops_when_done == 1  # the stalled one was dropped before the others were done
        assert max(finished) < 30  # a few seconds here; the stalled one held nobody up
        assert await metric(client, subscribers, district="xiangzhou") == n_live
        print(f"\n{n_live} live clients got {burst_size} entries each within {max(finished):.1f} s")

        # The stalled client reads at last: what had reached it, in order, then the end.
        reader = SseReader(stalled)
        reached, _ = await reader.rest(timeout=30)
        entries = [e for e in reached if e.event != "dropped"]
        assert event_ids(entries) == [primer, *burst][: len(entries)]
        assert 0 < len(entries) < burst_size
        assert reader.ended
        # It reconnects with the last id it got and loses nothing.
        rest = burst[len(entries) - 1 :]
        last = {"Last-Event-ID": reader.last_event_id or ""}
        async with feed(client, "xiangzhou", XZ, headers=last) as again:
            assert event_ids(await again.take(len(rest))) == rest
