"""Live district feeds for many clients from one Redis reader per feed (per process).

A feed in use has one reader task blocking on its stream (XREAD BLOCK, on the fan-out's own
Redis connection pool: a blocking read holds its connection) and pushing each new entry to every
subscriber's bounded queue without waiting. A subscriber whose queue is full is dropped, so a
slow or stalled client never slows the others; it resumes with its last entry id and loses
nothing, since every entry stays in the log. The reader stops when its last subscriber leaves.

:func:`follow` gives a client its entries after a position without gap or duplicate: the queue
is registered first, the backlog is then read from the log in pages, and the queue is drained
after it, skipping what the backlog already gave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError

from reporting.adapters.feed_log import FeedLog, id_before
from reporting.domain.feed import FeedEntry
from stallkit.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

#: How long one XREAD BLOCK waits (below the reader connections' socket timeout).
BLOCK_MS = 5_000
#: Entries read at once, by the reader and by a client catching up.
PAGE = 500
#: Why a subscriber was dropped (the ``reason`` of the metric and of the final SSE event).
SLOW_CONSUMER = "slow_consumer"
SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a client wants: some types and some markets, or everything."""

    types: frozenset[str] | None = None
    markets: frozenset[str] | None = None

    def __call__(self, entry: FeedEntry) -> bool:
        """Whether ``entry`` passes."""
        return (self.types is None or entry.type in self.types) and (
            self.markets is None or entry.market_id in self.markets
        )


class FeedPositionExpired(Exception):
    """Entries after the client's position were trimmed while it was catching up."""


@dataclass(eq=False)
class Subscriber:
    """One client of a feed: its bounded queue of live entries and whether it was dropped.

    ``None`` in the queue ends it. While ``catching_up`` a full queue does not drop the client:
    it is only marked ``overflowed`` and the catch-up reads the log on until it is level.
    """

    feed: str
    wants: EntryFilter
    queue: asyncio.Queue[FeedEntry | None]
    catching_up: bool = True
    overflowed: bool = False
    dropped: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, entry: FeedEntry) -> bool:
        """Queue ``entry`` if the client wants it; False when the queue is full (drop it)."""
        if not self.wants(entry):
            return True
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            if not self.catching_up:
                return False
            self.overflowed = True  # the catch-up reads it from the log
        return True

    def end(self, reason: str) -> None:
        """Drop the subscriber: what it had queued goes (it resumes from its last entry)."""
        self.dropped = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        self.ended.set()


class FeedMetrics:
    """Subscribers by feed and drops by feed and reason."""

    def __init__(self, registry: CollectorRegistry | None):
        self.subscribers = Gauge(
            "reporting_feed_subscribers",
            "SSE clients following a district feed in this process",
            ["district"],
            registry=registry,
        )
        self.dropped = Counter(
            "reporting_feed_dropped",
            "SSE clients dropped, by why (slow_consumer: their queue was full)",
            ["district", "reason"],
            registry=registry,
        )


@dataclass(eq=False)
class _Feed:
    """A feed in use: its subscribers and its reader, ready once it knows where it starts."""

    name: str
    subscribers: set[Subscriber] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None


class FeedFanout:
    """One reader per feed in use, fanning entries out to bounded per-client queues."""

    def __init__(
        self,
        log: FeedLog,
        *,
        queue_size: int,
        registry: CollectorRegistry | None = None,
        block_ms: int = BLOCK_MS,
    ):
        self.log = log  # on its own connections: the readers block on them
        self.queue_size = queue_size
        self.block_ms = block_ms
        self._batch = min(PAGE, queue_size)  # one batch never overfills an empty queue
        self.metrics = FeedMetrics(registry)
        self._feeds: dict[str, _Feed] = {}
        self._stopped = False

    def subscribers(self, feed: str) -> int:
        """Clients following ``feed`` in this process."""
        state = self._feeds.get(feed)
        return len(state.subscribers) if state else 0

    async def subscribe(self, feed: str, wants: EntryFilter, timeout: float = 5.0) -> Subscriber:
        """Register a client of ``feed``; every entry appended from now on reaches its queue.

        Returns once the feed's reader knows where it starts reading, so that whatever the
        client then reads from the log meets what the reader pushes, without a gap.
        """
        if self._stopped:
            raise RuntimeError("the feed fan-out is stopped")
        sub = Subscriber(feed, wants, asyncio.Queue(self.queue_size))
        state = self._feeds.get(feed)
        if state is None:
            state = self._feeds[feed] = _Feed(feed)
            state.reader = asyncio.create_task(self._read(state), name=f"feed-reader-{feed}")
        state.subscribers.add(sub)
        self.metrics.subscribers.labels(feed).inc()
        try:
            await asyncio.wait_for(state.ready.wait(), timeout)
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a client (again is harmless); the feed's reader stops with its last client."""
        state = self._feeds.get(sub.feed)
        if state is None or sub not in state.subscribers:
            return
        state.subscribers.discard(sub)
        self.metrics.subscribers.labels(sub.feed).dec()
        if not state.subscribers:
            del self._feeds[sub.feed]
            if state.reader is not None:
                state.reader.cancel()

    def _drop(self, sub: Subscriber, reason: str) -> None:
        self.unsubscribe(sub)
        sub.end(reason)
        self.metrics.dropped.labels(sub.feed, reason).inc()

    async def _read(self, state: _Feed) -> None:
        position: str | None = None
        failures = 0
        while True:
            try:
                if position is None:
                    position = await self.log.last_id(state.name)
                    state.ready.set()
                entries = await self.log.wait(state.name, position, self.block_ms, self._batch)
                failures = 0
            except (RedisError, OSError) as exc:
                failures += 1
                logger.warning(
                    "feed reader waits for Redis",
                    extra={"feed": state.name, "error": repr(exc), "failures": failures},
                )
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
                continue
            # No await from here on: a batch reaches every subscriber of this moment.
            for entry in entries:
                for sub in list(state.subscribers):
                    if not sub.offer(entry):
                        self._drop(sub, SLOW_CONSUMER)
            if entries:
                position = entries[-1].id

    async def stop(self) -> None:
        """Stop every reader and end every client (service shutdown)."""
        self._stopped = True
        readers = []
        for state in list(self._feeds.values()):
            for sub in list(state.subscribers):
                self._drop(sub, SHUTDOWN)
            if state.reader is not None:
                readers.append(state.reader)
        for reader in readers:
            await cancel_and_wait(reader)


async def follow(log: FeedLog, sub: Subscriber, after: str | None) -> AsyncIterator[FeedEntry]:
    """The entries ``sub`` wants after position ``after`` (from the log's start if None), in
    order, then live ones as they come; ends when the subscriber is dropped.

    ``sub`` must be registered before this starts. Raises :class:`FeedPositionExpired` if
    entries the client has not seen are trimmed while it catches up.
    """
    last = after
    while True:
        page = await log.read(sub.feed, last, PAGE)
        if last is not None and await log.expired(sub.feed, last):
            raise FeedPositionExpired(last)
        for entry in page:
            last = entry.id
            if sub.wants(entry):
                yield entry
        if len(page) == PAGE:
            continue
        if not sub.overflowed:
            break
        # Live entries were missed while this client caught up: the log still has them.
        sub.overflowed = False
        while not sub.queue.empty():
            sub.queue.get_nowait()
    sub.catching_up = False
    while True:
        live = await sub.queue.get()
        if live is None:
            return
        if last is not None and not id_before(last, live.id):
            continue  # the backlog gave it already
        last = live.id
        yield live
