"""Webhook subscriptions: registering and managing them, and delivering every wanted feed entry
to each, in order, signed, with retries.

Each active subscription has one delivery task per replica, and only the holder of the
subscription's Redis lease delivers; the others stand by. A supervisor loop starts and stops the
tasks as subscriptions come, pause, resume and go. A delivery moves the position only through
the store's scripts, which check the lease and the epoch: nothing is skipped, and a replay or a
lost lease wins over a delivery in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from reporting.adapters.feed_log import FeedLog, id_before
from reporting.adapters.webhook_store import Held, WebhookStore
from reporting.config import ReportingSettings
from reporting.domain.feed import FeedEntry
from reporting.domain.webhooks import (
    Change,
    Delivery,
    DeliveryState,
    Outcome,
    RetryPolicy,
    Status,
    Subscription,
    WebhookError,
    check_url,
    first_wanted,
    new_secret,
    new_subscription_id,
    payload,
    position_before,
    signed_headers,
    transition,
)
from stallkit.settings import Mode
from stallkit.tasks import cancel_and_wait

log = logging.getLogger(__name__)


Pair = tuple[Subscription, DeliveryState]
#: Feed entries read at a time.
BATCH = 100


def _now() -> dt.datetime:
    # Real time, not the service clock: retry times, lease times and the signature's timestamp
    # (which receivers check against their own clocks) are about the real world.
    return dt.datetime.now(dt.UTC)


def entry_age(entry_id: str, now: float) -> float:
    """Seconds since the entry was appended (its id starts with Redis's time in ms)."""
    return max(0.0, now - int(entry_id.partition("-")[0]) / 1000)


class WebhookMetrics:
    """Deliveries by outcome, how far behind each subscription is, subscriptions by status."""

    def __init__(self, registry: CollectorRegistry | None):
        self.deliveries = Counter(
            "reporting_webhook_deliveries_total",
            "Webhook delivery attempts by outcome (delivered, failed_attempt, paused)",
            ["district", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "reporting_webhook_lag_seconds",
            "Age of a subscription's oldest undelivered feed entry (0 when caught up)",
            ["district", "subscription"],
            registry=registry,
        )
        self.subscriptions = Gauge(
            "reporting_webhook_subscriptions",
            "Webhook subscriptions by status",
            ["district", "status"],
            registry=registry,
        )
        self._counted: set[tuple[str, str]] = set()

    def count_subscriptions(self, counts: dict[tuple[str, str], int]) -> None:
        """Set the subscriptions gauge; series that are gone drop to 0."""
        for labels in self._counted - set(counts):
            self.subscriptions.labels(*labels).set(0)
        for labels, n in counts.items():
            self.subscriptions.labels(*labels).set(n)
        self._counted |= set(counts)

    def forget_lag(self, district: str, sub_id: str) -> None:
        """This replica no longer tells this subscription's lag."""
        with contextlib.suppress(KeyError):
            self.lag.remove(district, sub_id)


class Webhooks:
    """The use cases behind the webhook routes."""

    def __init__(self, store: WebhookStore, feed: FeedLog, settings: ReportingSettings):
        self.store = store
        self.feed = feed
        self.settings = settings

    async def register(
        self,
        feed: str,
        *,
        url: str,
        event_types: list[str],
        markets: list[str],
        description: str,
    ) -> Pair:
        """A new subscription delivering the entries after the feed's newest one."""
        checked = check_url(
            url,
            dev_mode=self.settings.mode is Mode.DEV,
            loopback_only=self.settings.webhooks_loopback_only(),
        )
        sub = Subscription(
            id=new_subscription_id(),
            feed=feed,
            url=checked,
            secret=new_secret(),
            event_types=tuple(dict.fromkeys(event_types)),
            markets=tuple(dict.fromkeys(markets)),
            description=description,
            created_at=_now(),
        )
        cursor = await self.feed.last_id(feed)
        limit = self.settings.webhook_max_per_district
        if not await self.store.create(sub, cursor, limit=limit):
            raise WebhookError(
                "webhook_limit_reached", 409, f"this feed has {limit} subscriptions already"
            )
        return sub, DeliveryState(Status.ACTIVE, cursor)

    async def in_feed(self, feed: str) -> list[Pair]:
        """The feed's subscriptions, oldest first."""
        return await self.store.in_feed(feed)

    async def get(self, feed: str, sub_id: str) -> Pair:
        """One subscription of the feed, or 404."""
        found = await self.store.get(sub_id)
        if found is None or found[0].feed != feed:
            raise WebhookError("webhook_not_found", 404)
        return found

    async def delete(self, feed: str, sub_id: str) -> None:
        """Remove a subscription; its deliveries stop."""
        if not await self.store.delete(feed, sub_id):
            raise WebhookError("webhook_not_found", 404)

    async def _change(self, feed: str, sub_id: str, change: Change, cursor: str | None) -> Pair:
        was = await self.store.change(feed, sub_id, change, cursor)
        if was is None:
            raise WebhookError("webhook_not_found", 404)
        transition(was, change)  # raises if the table refused it (the store did nothing)
        return await self.get(feed, sub_id)

    async def resume(self, feed: str, sub_id: str) -> Pair:
        """A paused subscription delivers again from where it stopped."""
        _, state = await self.get(feed, sub_id)
        if state.status is Status.PAUSED and await self.feed.expired(feed, state.cursor):
            raise WebhookError(
                "webhook_position_expired",
                410,
                "entries after where it stopped are past the retention; replay from a later one",
            )
        return await self._change(feed, sub_id, Change.RESUME, None)

    async def replay(self, feed: str, sub_id: str, from_id: str) -> Pair:
        """Deliver again from entry ``from_id`` on (it included), whatever was delivered."""
        await self.get(feed, sub_id)
        cursor = position_before(from_id)
        if await self.feed.expired(feed, cursor):
            raise WebhookError(
                "webhook_position_expired", 410, f"entries from {from_id} are past the retention"
            )
        if id_before(await self.feed.last_id(feed), cursor):
            raise WebhookError("webhook_position_ahead", 422, f"the feed has no {from_id} yet")
        return await self._change(feed, sub_id, Change.REPLAY, cursor)

    async def deliveries(self, feed: str, sub_id: str, limit: int) -> list[Delivery]:
        """The subscription's latest delivery attempts, newest first."""
        await self.get(feed, sub_id)
        return await self.store.deliveries(sub_id, limit)


@dataclass(frozen=True)
class Runtime:
    """What delivery tasks share."""

    store: WebhookStore
    feed: FeedLog
    settings: ReportingSettings
    metrics: WebhookMetrics
    owner: str  # this replica's name on the leases

    @property
    def lease_ms(self) -> int:
        return int(self.settings.webhook_lease_seconds * 1000)

    @property
    def renew_every(self) -> float:
        return self.settings.webhook_lease_seconds / 3

    @property
    def retry(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(
            s.webhook_retry_initial_seconds,
            s.webhook_retry_max_delay_seconds,
            s.webhook_max_retry_seconds,
        )


class DeliveryWorker:
    """Delivers one subscription's entries while this replica holds its lease."""

    def __init__(self, sub_id: str, runtime: Runtime):
        self.sub_id = sub_id
        self.rt = runtime
        self._task: asyncio.Task[None] | None = None
        self._district = ""  # the subscription's feed, once read

    def start(self) -> None:
        """Stand by for the lease, then deliver, in the background."""
        self._task = asyncio.create_task(self.run(), name=f"webhook-{self.sub_id}")

    def done(self) -> bool:
        """Whether the task ended (the subscription paused or went)."""
        return self._task is not None and self._task.done()

    async def stop(self) -> None:
        """Stop delivering and hand the lease over."""
        await cancel_and_wait(self._task)
        with contextlib.suppress(Exception):
            await self.rt.store.release(self.sub_id, self.rt.owner)

    async def run(self) -> None:
        """Take the lease when it is free and deliver; end when the subscription stops."""
        delay = 0.2
        while True:
            try:
                if await self.rt.store.acquire(self.sub_id, self.rt.owner, self.rt.lease_ms):
                    if await self._lead():
                        return
                else:
                    await asyncio.sleep(self.rt.renew_every)
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook delivery failed, will retry", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _lead(self) -> bool:
        """Deliver while the lease holds; True when the subscription stopped (paused, gone)."""
        keep = asyncio.create_task(self._keep_lease())
        deliver = asyncio.create_task(self._deliver())
        try:
            done, _ = await asyncio.wait({keep, deliver}, return_when=asyncio.FIRST_COMPLETED)
            if deliver in done:
                return deliver.result()
            log.warning("webhook: lease lost", extra={"subscription": self.sub_id})
            return False
        finally:
            await cancel_and_wait(keep, deliver)
            with contextlib.suppress(Exception):
                await self.rt.store.release(self.sub_id, self.rt.owner)
            if self._district:
                self.rt.metrics.forget_lag(self._district, self.sub_id)

    async def _keep_lease(self) -> None:
        """Renew the lease; return when it is lost."""
        while True:
            await asyncio.sleep(self.rt.renew_every)
            try:
                renewed = await self.rt.store.renew(self.sub_id, self.rt.owner, self.rt.lease_ms)
            except Exception as exc:
                log.warning("webhook: lease renewal failed", extra={"error": repr(exc)})
                continue  # the delivery scripts check the lease anyway
            if not renewed:
                return

    async def _deliver(self) -> bool:
        """Deliver in order until the subscription stops (True) or the lease is lost (False)."""
        timeout = httpx.Timeout(self.rt.settings.webhook_timeout_seconds)
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False
        ) as http:
            while True:
                found = await self.rt.store.get(self.sub_id)
                if found is None or found[1].status is not Status.ACTIVE:
                    return True
                sub, state = found
                self._district = sub.feed
                if await self.rt.feed.expired(sub.feed, state.cursor):
                    await self._pause(sub, state, "position_expired: entries were trimmed")
                    return True
                entry = await self._next_wanted(sub, state)
                if entry is None:
                    continue  # read the state again: it may have moved
                age = entry_age(entry.id, time.time())
                self.rt.metrics.lag.labels(sub.feed, sub.id).set(age)
                if await self._attempt(http, sub, state, entry) is Held.LOST:
                    return False

    async def _next_wanted(self, sub: Subscription, state: DeliveryState) -> FeedEntry | None:
        """The next entry to deliver, polling the feed; None after a scan period without one
        (or once the position was moved from outside), so that the state is read again."""
        s = self.rt.settings
        cursor = state.cursor
        look_again = time.monotonic() + s.webhook_scan_seconds
        while time.monotonic() < look_again:
            entries = await self.rt.feed.read(sub.feed, cursor, count=BATCH)
            entry, passed = first_wanted(sub, entries)
            if entry is not None:
                return entry
            self.rt.metrics.lag.labels(sub.feed, sub.id).set(0)
            if passed is not None:  # none of them wanted: move past them
                held = await self.rt.store.advance(sub.id, self.rt.owner, state.epoch, passed)
                if held is not Held.DONE:
                    return None
                cursor = passed
            if len(entries) < BATCH:
                await asyncio.sleep(s.webhook_poll_seconds)
        return None

    async def _attempt(
        self, http: httpx.AsyncClient, sub: Subscription, state: DeliveryState, entry: FeedEntry
    ) -> Held:
        """One delivery attempt of ``entry``; on failure, the wait before the next one."""
        rt = self.rt
        body = payload(entry)
        started_at = _now()
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            headers = signed_headers(sub.secret, entry, body, started_at)
            async with http.stream("POST", sub.url, content=body.encode(), headers=headers) as r:
                status_code = r.status_code  # the answer's body is not read
        except httpx.TimeoutException:
            error = "timeout"
        except Exception as exc:  # refused, reset, TLS, a URL httpx will not take: all failures
            error = f"{type(exc).__name__}: {exc}"[:300]
        duration_ms = int((time.monotonic() - started) * 1000)
        ok = status_code is not None and 200 <= status_code < 300
        if status_code is not None and not ok:
            error = f"HTTP {status_code}"

        def record(attempt: int, outcome: Outcome) -> Delivery:
            return Delivery(
                entry_id=entry.id,
                event_id=entry.event_id,
                type=entry.type,
                attempt=attempt,
                at=started_at,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                outcome=outcome,
            )

        if ok:
            held = await rt.store.advance(sub.id, rt.owner, state.epoch, entry.id)
            await rt.store.record(sub.id, record(state.attempt_at(entry.id), Outcome.DELIVERED))
            rt.metrics.deliveries.labels(sub.feed, Outcome.DELIVERED.value).inc()
            return held
        failure = await rt.store.failed(sub.id, rt.owner, state.epoch, entry.id, started_at)
        if failure.held is not Held.DONE or failure.failing_since is None:
            attempt = state.attempt_at(entry.id)
            await rt.store.record(sub.id, record(attempt, Outcome.FAILED_ATTEMPT))
            return failure.held
        now = _now()
        policy = rt.retry
        if policy.exhausted(failure.failing_since, now):
            since = failure.failing_since.isoformat(timespec="seconds")
            reason = f"retries ran out: {error} (failing since {since})"
            held = await rt.store.pause(sub.id, rt.owner, state.epoch, now, reason)
            outcome = Outcome.PAUSED if held is Held.DONE else Outcome.FAILED_ATTEMPT
            await rt.store.record(sub.id, record(failure.attempts, outcome))
            rt.metrics.deliveries.labels(sub.feed, outcome.value).inc()
            if held is Held.DONE:
                log.warning("webhook paused", extra={"subscription": sub.id, "reason": reason})
            return held
        await rt.store.record(sub.id, record(failure.attempts, Outcome.FAILED_ATTEMPT))
        rt.metrics.deliveries.labels(sub.feed, Outcome.FAILED_ATTEMPT.value).inc()
        await self._wait_unless_moved(
            policy.wait_after(failure.attempts, failure.failing_since, now), state.epoch
        )
        return Held.DONE

    async def _pause(self, sub: Subscription, state: DeliveryState, reason: str) -> None:
        held = await self.rt.store.pause(sub.id, self.rt.owner, state.epoch, _now(), reason)
        if held is Held.DONE:
            self.rt.metrics.deliveries.labels(sub.feed, Outcome.PAUSED.value).inc()
            log.warning("webhook paused", extra={"subscription": sub.id, "reason": reason})

    async def _wait_unless_moved(self, seconds: float, epoch: int) -> None:
        """Wait before a retry, but not past a resume, replay or deletion."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.rt.settings.webhook_scan_seconds))
            found = await self.rt.store.get(self.sub_id)
            if found is None or found[1].epoch != epoch or found[1].status is not Status.ACTIVE:
                return


class WebhookSupervisor:
    """Keeps one delivery task per active subscription on this replica."""

    def __init__(
        self,
        store: WebhookStore,
        feed: FeedLog,
        settings: ReportingSettings,
        registry: CollectorRegistry | None,
    ):
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rt = Runtime(store, feed, settings, WebhookMetrics(registry), owner)
        self.workers: dict[str, DeliveryWorker] = {}
        self._paused: set[tuple[str, str]] = set()  # whose lag this replica tells
        self._task: asyncio.Task[None] | None = None

    async def scan(self) -> None:
        """Start tasks for new or resumed subscriptions, stop those of paused or deleted ones;
        count subscriptions and tell paused ones' lag."""
        listed = await self.rt.store.overview()
        active = {item.id for item in listed if item.status is Status.ACTIVE}
        for sub_id in [i for i, w in self.workers.items() if i not in active or w.done()]:
            await self.workers.pop(sub_id).stop()
        for sub_id in sorted(active - set(self.workers)):
            worker = self.workers[sub_id] = DeliveryWorker(sub_id, self.rt)
            worker.start()
        counts: dict[tuple[str, str], int] = {}
        for item in listed:
            key = (item.feed, item.status.value)
            counts[key] = counts.get(key, 0) + 1
        self.rt.metrics.count_subscriptions(counts)
        paused = {(item.feed, item.id) for item in listed if item.status is Status.PAUSED}
        for district, sub_id in self._paused - paused:
            # Resumed (its delivering replica tells its lag from now on) or deleted.
            self.rt.metrics.forget_lag(district, sub_id)
        self._paused = paused
        for _, sub_id in sorted(paused):
            await self._paused_lag(sub_id)

    async def _paused_lag(self, sub_id: str) -> None:
        found = await self.rt.store.get(sub_id)
        if found is None:
            return
        sub, state = found
        entry, _ = first_wanted(sub, await self.rt.feed.read(sub.feed, state.cursor, count=BATCH))
        age = 0.0 if entry is None else entry_age(entry.id, time.time())
        self.rt.metrics.lag.labels(sub.feed, sub.id).set(age)

    async def run(self) -> None:
        """Scan every ``webhook_scan_seconds`` until stopped."""
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook supervisor scan failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.rt.settings.webhook_scan_seconds)

    async def start(self) -> Callable[[], Awaitable[None]]:
        """Start supervising (a ``build_service`` background); returns the stopper."""
        self._task = asyncio.create_task(self.run(), name="webhook-supervisor")
        return self.stop

    async def stop(self) -> None:
        """Stop every delivery task and hand the leases over."""
        await cancel_and_wait(self._task)
        workers, self.workers = list(self.workers.values()), {}
        await asyncio.gather(*(w.stop() for w in workers))
