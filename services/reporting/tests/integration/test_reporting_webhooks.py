"""Webhook deliveries of the district feeds against a real broker and redis-server: events
published to Kafka reach local receivers that verify every signature with the Standard Webhooks
library, in order, through failures, slowness, outages, pauses and replays."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.types import Receive, Scope, Send

from contracts.catalogue import District
from contracts.events import WindowClosed, WindowOpened
from reporting.adapters.feed_log import FeedLog
from reporting.adapters.webhook_store import WebhookStore
from reporting.app import create_app
from reporting.config import ReportingSettings
from reporting.service_layer.webhooks import Webhooks, WebhookSupervisor
from stallctl import procs
from stallkit.auth import Role
from stallkit.messaging import publish_event
from stalltest.tokens import dev_token

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]

XZ = {"Authorization": f"Bearer {dev_token(Role.DISTRICT, 'xz-office', district='xiangzhou')}"}
DM = {"Authorization": f"Bearer {dev_token(Role.DISTRICT, 'dm-office', district='doumen')}"}
ADMIN = {"Authorization": f"Bearer {dev_token(Role.ADMIN, 'city-admin')}"}
PATROL = {"Authorization": f"Bearer {dev_token(Role.PATROL, 'p-7', district='xiangzhou')}"}
HOOKS = "/v1/feeds/xiangzhou/webhooks"
PROBLEM = "application/problem+json"


class Receiver:
    """A district office's endpoint: verifies each delivery's signature, records what came,
    fails the first ``fail_first`` (or all while ``failing``), answers after ``delay``."""

    def __init__(self, *, fail_first: int = 0, delay: float = 0.0):
        self.secret = ""
        self.fail_first = fail_first
        self.delay = delay
        self.failing = False
        self.requests: list[str] = []  # webhook-id of every verified delivery attempt
        self.accepted: list[dict[str, Any]] = []  # bodies answered with a 2xx
        self.unverified = 0
        self.content_types: set[str] = set()

    @property
    def accepted_ids(self) -> list[str]:
        return [body["event_id"] for body in self.accepted]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] != "POST":
            await self._answer(send, 200)
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            delivered = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.unverified += 1
            await self._answer(send, 400)
            return
        self.content_types.add(headers["content-type"])
        self.requests.append(headers["webhook-id"])
        if self.failing or len(self.requests) <= self.fail_first:
            await self._answer(send, 503)
            return
        await asyncio.sleep(self.delay)
        self.accepted.append(delivered)
        await self._answer(send, 204)

    @staticmethod
    async def _answer(send: Send, status: int) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


Listen = Callable[..., Awaitable[str]]


@pytest.fixture
async def listen() -> AsyncIterator[Listen]:
    """Serve a receiver on a port (a free one unless given); returns its delivery URL."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(receiver: Receiver, port: int | None = None) -> str:
        port = port or procs.free_port()
        config = uvicorn.Config(
            receiver, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        while not server.started:
            assert not task.done(), "the receiver did not start"
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{port}/hook"

    yield start
    for server, task in running:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def quick(settings: ReportingSettings, **overrides: Any) -> ReportingSettings:
    """Settings with test-sized waits."""
    fast: dict[str, Any] = {
        "webhook_retry_initial_seconds": 0.05,
        "webhook_retry_max_delay_seconds": 0.2,
        "webhook_max_retry_seconds": 60.0,
        "webhook_poll_seconds": 0.05,
        "webhook_scan_seconds": 0.2,
        "webhook_lease_seconds": 1.5,
        "webhook_timeout_seconds": 3.0,
    }
    return settings.model_copy(update={**fast, **overrides})


class Events:
    """Publishes window events of one Xiangzhou market (one partition: the feed's order)."""

    def __init__(self, publisher: KafkaBroker, settings: ReportingSettings):
        self.publisher = publisher
        self.settings = settings
        self.n = 0

    async def publish(self, cls: type[Any] = WindowOpened, market: str = "XZ-07") -> str:
        """Publish one more event; its id (the deliveries' ``webhook-id``)."""
        self.n += 1
        now = dt.datetime.now(dt.UTC)
        fields: dict[str, Any] = {
            "market_id": market,
            "date": dt.date(2026, 11, 1) + dt.timedelta(days=self.n),
            "window_id": "evening",
            "district": District.XIANGZHOU,
        }
        if cls is WindowOpened:
            fields["closes_at"] = now + dt.timedelta(hours=5)
        envelope = await publish_event(self.publisher, self.settings, cls(**fields), time=now)
        return envelope.id

    async def many(self, n: int) -> list[str]:
        return [await self.publish() for _ in range(n)]


def received(receiver: Receiver, n: int) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: the receiver has accepted ``n`` deliveries."""

    async def check() -> bool:
        return len(receiver.accepted) >= n

    return check


async def register(
    client: httpx.AsyncClient, url: str, receiver: Receiver | None = None, **body: Any
) -> dict[str, Any]:
    response = await client.post(HOOKS, json={"url": url, **body}, headers=XZ)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    if receiver is not None:
        receiver.secret = created["secret"]
    return created


async def deliveries(client: httpx.AsyncClient, sub_id: str, **query: Any) -> list[dict[str, Any]]:
    response = await client.get(f"{HOOKS}/{sub_id}/deliveries", params=query, headers=XZ)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


async def metric(client: httpx.AsyncClient, line_start: str) -> float | None:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_receiver_failing_at_first_gets_every_event_in_order_once_accepted_and_signed(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
    redis_client: Redis,
) -> None:
    settings = quick(reporting_settings)
    client = await serve(create_app(settings, configure_logs=False))
    events = Events(publisher, settings)
    earlier = await events.publish()
    feed = FeedLog(redis_client, settings, dt.timedelta(days=7))

    async def logged(event_id: str) -> bool:
        return event_id in [e.event_id for e in await feed.read("xiangzhou", None)]

    await eventually(lambda: logged(earlier))
    receiver = Receiver(fail_first=3)
    created = await register(client, await listen(receiver), receiver, description="值班系统")
    assert created["status"] == "active"
    assert created["secret"].startswith("whsec_")
    ids = await events.many(5)

    await eventually(received(receiver, 5))
    await asyncio.sleep(0.3)  # nothing more comes
    assert receiver.accepted_ids == ids  # in order, each once, none from before registering
    # The failing entry stayed first: its retries carried its event id, nothing was skipped.
    assert receiver.requests == [ids[0]] * 4 + ids[1:]
    assert receiver.unverified == 0
    assert receiver.content_types == {"application/json"}
    assert {b["type"] for b in receiver.accepted} == {"window.opened"}
    assert {b["district"] for b in receiver.accepted} == {"xiangzhou"}

    log = await deliveries(client, created["id"])
    oldest_first = log[::-1]
    assert [(d["attempt"], d["outcome"], d["status_code"]) for d in oldest_first[:4]] == [
        (1, "failed_attempt", 503),
        (2, "failed_attempt", 503),
        (3, "failed_attempt", 503),
        (4, "delivered", 204),
    ]
    assert oldest_first[0]["error"] == "HTTP 503"
    assert [d["event_id"] for d in oldest_first[3:]] == ids
    sub = (await client.get(f"{HOOKS}/{created['id']}", headers=XZ)).json()
    assert sub["delivered_through"] == receiver.accepted[-1]["id"]
    assert sub["failed_attempts"] == 0
    labels = '{district="xiangzhou",outcome="%s"}'
    assert await metric(client, "reporting_webhook_deliveries_total" + labels % "delivered") == 5
    assert await metric(client, "reporting_webhook_deliveries_total" + labels % "failed_attempt")
    lag = f'reporting_webhook_lag_seconds{{district="xiangzhou",subscription="{created["id"]}"}}'
    assert await metric(client, lag) == 0
    active = 'reporting_webhook_subscriptions{district="xiangzhou",status="active"}'
    assert await eventually(lambda: metric(client, active)) == 1


async def test_a_slow_receiver_does_not_delay_another_subscription(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
) -> None:
    settings = quick(reporting_settings)
    client = await serve(create_app(settings, configure_logs=False))
    slow, fast = Receiver(delay=1.0), Receiver()
    await register(client, await listen(slow), slow, description="slow")
    await register(client, await listen(fast), fast, description="fast")
    ids = await Events(publisher, settings).many(3)

    await eventually(received(fast, 3))
    assert fast.accepted_ids == ids
    assert len(slow.accepted) <= 1  # one every second: it is still on its first ones
    await eventually(received(slow, 3))
    assert slow.accepted_ids == ids
    assert slow.unverified == fast.unverified == 0


async def test_a_receiver_down_for_a_while_then_up_gets_everything_in_order(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
) -> None:
    settings = quick(reporting_settings)
    client = await serve(create_app(settings, configure_logs=False))
    port = procs.free_port()  # nothing listens there yet
    receiver = Receiver()
    created = await register(client, f"http://127.0.0.1:{port}/hook", receiver)
    ids = await Events(publisher, settings).many(4)

    async def refused_a_few_times() -> bool:
        return len(await deliveries(client, created["id"])) >= 3

    await eventually(refused_a_few_times)
    log = await deliveries(client, created["id"])
    assert {d["outcome"] for d in log} == {"failed_attempt"}
    assert {d["event_id"] for d in log} == {ids[0]}  # always the first entry again
    assert all(d["status_code"] is None and d["error"].startswith("ConnectError") for d in log)

    await listen(receiver, port)
    await eventually(received(receiver, 4))
    assert receiver.accepted_ids == ids
    assert receiver.requests == ids
    assert (await deliveries(client, created["id"], limit=1))[0]["outcome"] == "delivered"


async def test_failing_past_the_retry_time_pauses_and_resume_delivers_the_rest_in_order(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
    redis_client: Redis,
) -> None:
    settings = quick(reporting_settings, webhook_max_retry_seconds=1.0)
    client = await serve(create_app(settings, configure_logs=False))
    events = Events(publisher, settings)
    receiver = Receiver()
    receiver.failing = True
    created = await register(client, await listen(receiver), receiver)
    url = f"{HOOKS}/{created['id']}"
    first = await events.publish()

    async def paused() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(url, headers=XZ)).json()
        return body if body["status"] == "paused" else None

    sub = await eventually(paused, timeout=10)
    assert sub["paused_at"] is not None
    assert "HTTP 503" in sub["paused_reason"]
    assert set(receiver.requests) == {first}
    log = await deliveries(client, created["id"])
    assert log[0]["outcome"] == "paused"
    assert {d["outcome"] for d in log[1:]} == {"failed_attempt"}
    assert [d["attempt"] for d in log[::-1]] == list(range(1, len(log) + 1))
    paused_metric = 'reporting_webhook_subscriptions{district="xiangzhou",status="paused"}'
    assert await eventually(lambda: metric(client, paused_metric)) == 1
    outcome = 'reporting_webhook_deliveries_total{district="xiangzhou",outcome="paused"}'
    assert await metric(client, outcome) == 1

    # Published while paused: logged in the feed, not delivered.
    later = await events.many(2)
    feed = FeedLog(redis_client, settings, dt.timedelta(days=7))

    async def logged() -> bool:
        return later[-1] in [e.event_id for e in await feed.read("xiangzhou", None)]

    await eventually(logged)
    tried = len(receiver.requests)
    await asyncio.sleep(0.6)
    assert len(receiver.requests) == tried
    lag = f'reporting_webhook_lag_seconds{{district="xiangzhou",subscription="{created["id"]}"}}'
    assert await eventually(lambda: metric(client, lag)) > 0  # the paused one falls behind

    receiver.failing = False
    resumed = await client.post(f"{url}/resume", headers=XZ)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"
    assert resumed.json()["paused_at"] is None
    await eventually(received(receiver, 3))
    assert receiver.accepted_ids == [first, *later]

    again = await client.post(f"{url}/resume", headers=XZ)
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert again.json()["code"] == "webhook_not_paused"


async def test_the_delivery_log_lists_attempts_and_replay_delivers_again_from_an_entry(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
) -> None:
    settings = quick(reporting_settings)
    client = await serve(create_app(settings, configure_logs=False))
    receiver = Receiver()
    created = await register(client, await listen(receiver), receiver)
    ids = await Events(publisher, settings).many(3)
    await eventually(received(receiver, 3))
    entry_ids = [body["id"] for body in receiver.accepted]

    log = await deliveries(client, created["id"])
    assert [d["entry_id"] for d in log] == entry_ids[::-1]  # newest first
    assert [d["event_id"] for d in log] == ids[::-1]
    for d in log:
        assert (d["attempt"], d["status_code"], d["error"], d["outcome"]) == (
            1,
            204,
            None,
            "delivered",
        )
        assert d["type"] == "window.opened"
        assert d["duration_ms"] >= 0
        assert dt.datetime.fromisoformat(d["at"]) <= dt.datetime.now(dt.UTC)
    assert len(await deliveries(client, created["id"], limit=2)) == 2

    url = f"{HOOKS}/{created['id']}/replay"
    replayed = await client.post(url, json={"from": entry_ids[1]}, headers=XZ)
    assert replayed.status_code == 200, replayed.text
    await eventually(received(receiver, 5))
    await asyncio.sleep(0.3)
    assert receiver.accepted_ids == [*ids, *ids[1:]]
    assert [d["entry_id"] for d in await deliveries(client, created["id"], limit=2)] == [
        entry_ids[2],
        entry_ids[1],
    ]

    ahead = await client.post(url, json={"from": "99999999999999-0"}, headers=XZ)
    assert (ahead.status_code, ahead.json()["code"]) == (422, "webhook_position_ahead")
    garbled = await client.post(url, json={"from": "yesterday"}, headers=XZ)
    assert (garbled.status_code, garbled.json()["code"]) == (422, "validation_failed")


async def test_replay_from_a_position_past_the_retention_is_gone(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
    redis_client: Redis,
) -> None:
    settings = quick(reporting_settings, feed_retention_days=1.0 / 86400)  # one second
    client = await serve(create_app(settings, configure_logs=False))
    events = Events(publisher, settings)
    feed = FeedLog(redis_client, settings, dt.timedelta(days=7))

    async def entry_of(event_id: str) -> str | None:
        found = [e.id for e in await feed.read("xiangzhou", None) if e.event_id == event_id]
        return found[0] if found else None

    first = await events.publish()
    old = await eventually(lambda: entry_of(first))
    await asyncio.sleep(1.2)
    newer = await events.publish()
    await eventually(lambda: entry_of(newer))  # appending it trimmed the old one
    receiver = Receiver()
    created = await register(client, await listen(receiver), receiver)

    gone = await client.post(f"{HOOKS}/{created['id']}/replay", json={"from": old}, headers=XZ)
    assert gone.status_code == 410
    assert gone.headers["content-type"] == PROBLEM
    assert gone.json()["code"] == "webhook_position_expired"


async def test_filters_deliver_only_the_chosen_types_and_markets(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
) -> None:
    settings = quick(reporting_settings)
    client = await serve(create_app(settings, configure_logs=False))
    closings, xz08 = Receiver(), Receiver()
    await register(client, await listen(closings), closings, event_types=["window.closed"])
    await register(client, await listen(xz08), xz08, markets=["XZ-08"])
    events = Events(publisher, settings)
    await events.publish(WindowOpened, "XZ-07")
    closed = await events.publish(WindowClosed, "XZ-07")
    opened_08 = await events.publish(WindowOpened, "XZ-08")
    await eventually(received(closings, 1))
    await eventually(received(xz08, 1))
    await asyncio.sleep(0.5)
    assert closings.accepted_ids == [closed]
    assert xz08.accepted_ids == [opened_08]


async def test_offices_manage_only_their_own_feed_and_the_secret_is_shown_once(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    listen: Listen,
) -> None:
    settings = quick(reporting_settings)
    client = await serve(create_app(settings, configure_logs=False))
    receiver = Receiver()
    url = await listen(receiver)

    other = await client.post("/v1/feeds/doumen/webhooks", json={"url": url}, headers=XZ)
    assert other.status_code == 403
    assert other.headers["content-type"] == PROBLEM
    assert other.json()["code"] == "other_district"
    everything = await client.post("/v1/feeds/all/webhooks", json={"url": url}, headers=XZ)
    assert everything.json()["code"] == "other_district"
    vendor = dev_token(Role.VENDOR, "vd-1", audience=["reporting"])
    for headers in (PATROL, {"Authorization": f"Bearer {vendor}"}):
        refused = await client.post(HOOKS, json={"url": url}, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert (await client.post(HOOKS, json={"url": url})).status_code == 401

    for bad_url in ("http://xz-office.example.cn/hook", "ftp://127.0.0.1/hook"):
        refused = await client.post(HOOKS, json={"url": bad_url}, headers=XZ)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "webhook_url_refused"
    unknown = await client.post(HOOKS, json={"url": url, "event_types": ["x.y"]}, headers=XZ)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "validation_failed")

    by_admin = await client.post("/v1/feeds/doumen/webhooks", json={"url": url}, headers=ADMIN)
    assert by_admin.status_code == 201
    theirs = by_admin.json()["id"]
    peek = await client.get(f"/v1/feeds/doumen/webhooks/{theirs}", headers=XZ)
    assert (peek.status_code, peek.json()["code"]) == (403, "other_district")
    wrong_feed = await client.get(f"{HOOKS}/{theirs}", headers=XZ)
    assert (wrong_feed.status_code, wrong_feed.json()["code"]) == (404, "webhook_not_found")
    assert (await client.get(f"/v1/feeds/doumen/webhooks/{theirs}", headers=DM)).status_code == 200

    created = await register(client, url, receiver, description="香洲值班")
    secret = created["secret"]
    sub_url = f"{HOOKS}/{created['id']}"
    shown = [
        await client.get(HOOKS, headers=XZ),
        await client.get(sub_url, headers=XZ),
        await client.get(f"{sub_url}/deliveries", headers=XZ),
        await client.post(f"{sub_url}/replay", json={"from": "0-0"}, headers=XZ),
        await client.get("/v1/feeds/doumen/webhooks", headers=DM),
    ]
    assert all(r.status_code == 200 for r in shown)
    assert all(secret not in r.text and "secret" not in r.json() for r in shown)
    assert [s["id"] for s in shown[0].json()] == [created["id"]]
    assert shown[0].json()[0]["description"] == "香洲值班"

    kept_receiver = Receiver()
    kept = await register(client, await listen(kept_receiver), kept_receiver)
    assert (await client.delete(sub_url, headers=DM)).status_code == 403
    assert (await client.delete(sub_url, headers=XZ)).status_code == 204
    assert (await client.get(sub_url, headers=XZ)).status_code == 404
    assert [s["id"] for s in (await client.get(HOOKS, headers=XZ)).json()] == [kept["id"]]
    published = await Events(publisher, settings).publish()
    await eventually(received(kept_receiver, 1))
    await asyncio.sleep(0.3)
    assert kept_receiver.accepted_ids == [published]
    assert receiver.requests == []  # the deleted subscription got nothing


async def test_one_replica_delivers_at_a_time_and_another_takes_over_when_it_stops(
    reporting_settings: ReportingSettings, redis_client: Redis, listen: Listen
) -> None:
    # The hand-over is the stopping replica's release, not the lease running out: a lease
    # long enough that a busy machine's pause does not lapse it (that case is the next test).
    settings = quick(reporting_settings, webhook_lease_seconds=6.0)
    feed = FeedLog(redis_client, settings, dt.timedelta(days=7))
    store = WebhookStore(redis_client, settings)
    receiver = Receiver()
    sub, _ = await Webhooks(store, feed, settings).register(
        "xiangzhou", url=await listen(receiver), event_types=[], markets=[], description=""
    )
    receiver.secret = sub.secret
    replicas = [WebhookSupervisor(store, feed, settings, None) for _ in range(2)]
    for replica in replicas:
        await replica.start()

    async def append(n: int) -> str:
        await feed.append(
            event_id=f"ev-{n}",
            type="window.opened",
            market_id="XZ-07",
            district="xiangzhou",
            time=dt.datetime.now(dt.UTC),
            summary_zh=f"第 {n} 条",
            summary_en=f"entry {n}",
            event={"n": n},
        )
        return f"ev-{n}"

    async def all_accepted(n: int) -> None:
        deadline = time.monotonic() + 20
        while len(receiver.accepted) < n:
            assert time.monotonic() < deadline, receiver.accepted_ids
            await asyncio.sleep(0.05)

    try:
        ids = [await append(n) for n in range(3)]
        await all_accepted(3)
        holder_name = (await redis_client.get(store.lease_key(sub.id))).decode()
        holder = next(r for r in replicas if r.rt.owner == holder_name)
        await holder.stop()  # hands the lease over
        ids += [await append(n) for n in range(3, 6)]
        await all_accepted(6)
        assert receiver.requests == ids  # once each, in order, across the hand-over
        standby = next(r for r in replicas if r is not holder)
        assert (await redis_client.get(store.lease_key(sub.id))).decode() == standby.rt.owner
    finally:
        for replica in replicas:
            await replica.stop()


async def test_a_stalled_holder_whose_lease_lapsed_takes_it_back_unless_another_took_it(
    reporting_settings: ReportingSettings, redis_client: Redis
) -> None:
    store = WebhookStore(redis_client, quick(reporting_settings))
    sub_id = f"sub-{uuid.uuid4().hex[:8]}"
    assert await store.acquire(sub_id, "stalled", 100)
    await asyncio.sleep(0.2)  # the holder was paused for longer than its lease
    assert await store.renew(sub_id, "stalled", 5000)  # nobody took it: it carries on
    assert (await redis_client.get(store.lease_key(sub_id))) == b"stalled"
    assert 0 < await redis_client.pttl(store.lease_key(sub_id)) <= 5000

    await redis_client.delete(store.lease_key(sub_id))  # lapsed again ...
    assert await store.acquire(sub_id, "standby", 5000)  # ... and the standby took over
    assert not await store.renew(sub_id, "stalled", 5000)
    assert (await redis_client.get(store.lease_key(sub_id))) == b"standby"
