"""The tick loop: on the shared clock, claim every market's due timers, in order, on time.

Every replica runs one; the claim script makes each timer published once whoever claims it.
Each tick reads the due-markets hint; a sweep (every ``sweep_seconds``, and at start) claims
every known market regardless of the hint and measures what is due but unpublished. On start
and on each new local day every market is replanned, so the timeline rolls forward.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import date, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stallkit.clock import Clock
from stallkit.tasks import cancel_and_wait
from windows.adapters.timers import ClaimedTimer, OnClaim
from windows.domain.timeline import Timing, local_today
from windows.service_layer.timeline import Timeline

log = logging.getLogger(__name__)

#: Markets claimed by one call (one script per shard among them).
CHUNK = 200

LATENESS_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
    86400.0,
)  # fmt: skip


class Ticker:
    """Claims due timers of every market, on time, for as long as it runs."""

    def __init__(
        self,
        timeline: Timeline,
        clock: Clock,
        *,
        registry: CollectorRegistry | None = None,
        poll_seconds: float = 0.02,
        sweep_seconds: float = 30.0,
        concurrency: int = 16,
        observers: Sequence[OnClaim] = (),
    ):
        self.timeline = timeline
        self.timers = timeline.timers
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.sweep_seconds = sweep_seconds
        self._limit = asyncio.Semaphore(concurrency)
        self._observers = tuple(observers)
        self._task: asyncio.Task[None] | None = None
        self._planned_day: date | None = None
        self._last_sweep = float("-inf")
        self.lateness = Histogram(
            "windows_timer_lateness_seconds",
            "How late (service-clock seconds after its due time) each timer was published",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.due_unpublished = Gauge(
            "windows_timers_due_unpublished",
            "Timers overdue (past the late tolerance) and not yet published, at the last sweep",
            registry=registry,
        )
        self.stale = Counter(
            "windows_timers_stale",
            "Timers over a day late, recorded but not published, since start",
            registry=registry,
        )

    @property
    def planned_day(self) -> date | None:
        """The local date the timeline was last planned for (on start and each new day)."""
        return self._planned_day

    def _observe(self, timer: ClaimedTimer, timing: Timing, late_by: timedelta) -> None:
        for observer in self._observers:
            observer(timer, timing, late_by)
        if timing is Timing.STALE:
            self.stale.inc()
            log.warning("stale timer recorded, not published", extra={"timer": timer.id})
            return
        self.lateness.labels(timer.kind).observe(late_by.total_seconds())
        if timing is Timing.LATE:
            log.info(
                "timer published late",
                extra={
                    "market_id": timer.market_id,
                    "kind": timer.kind,
                    "late_by_seconds": late_by.total_seconds(),
                },
            )

    async def claim(self, markets: Sequence[str]) -> None:
        """Claim the due timers of ``markets``: one script per shard and chunk of markets."""
        chunks = [markets[i : i + CHUNK] for i in range(0, len(markets), CHUNK)]
        await asyncio.gather(*(self._claim(chunk) for chunk in chunks))

    async def _claim(self, markets: Sequence[str]) -> None:
        async with self._limit:
            await self.timers.claim_many(markets, self.clock.now(), self._observe)

    async def tick(self) -> None:
        """One round: roll the plan on a new day, claim what is due, sweep when it is time."""
        now = self.clock.now()
        today = local_today(now)
        if today != self._planned_day:
            count = await self.timeline.replan_all()
            self._planned_day = today
            log.info("timeline planned", extra={"markets": count, "date": today.isoformat()})
        if time.monotonic() - self._last_sweep >= self.sweep_seconds:
            markets = await self.timeline.schedules.market_ids()
            overdue = now - self.timers.tolerance
            self.due_unpublished.set(await self.timers.count_due(markets, overdue))
            self._last_sweep = time.monotonic()
        else:
            markets = await self.timers.due_markets(now)
        if markets:
            await self.claim(markets)

    async def run(self) -> None:
        """Tick until cancelled; failures (Redis away) are logged and retried with backoff."""
        delay = self.poll_seconds
        while True:
            try:
                await self.tick()
                delay = self.poll_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("tick failed, will retry", extra={"error": repr(exc)})
                delay = min(max(delay * 2, 0.1), 5.0)
            await asyncio.sleep(delay)

    def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self.run(), name="windows-ticker")

    async def stop(self) -> None:
        """Stop ticking."""
        await cancel_and_wait(self._task)
        self._task = None
