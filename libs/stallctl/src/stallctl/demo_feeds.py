"""``stallctl demo``: the district offices follow their feeds all day.

Each district office keeps reporting's Server-Sent Events feed of its district open from the
start of the day (``?from=start``), resuming with ``Last-Event-ID`` whenever the stream ends (a
replica restarting, the office dropped for falling behind). At the end, once reporting has
caught up, the entries each office received live are compared with its feed read again from
the start: the same entries, each once, in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from stallctl.demo_driver import Driver
from stallctl.demo_report import district_label
from stallkit.auth import Role

#: The end of the day: a feed with no new entry for this long (real seconds) is complete.
QUIET_SECONDS = 3.0


@dataclass
class SseEvent:
    """One event of a stream: its id (none for ``dropped``), type and data."""

    id: str | None
    event: str
    data: str


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events of an SSE response (comments and heartbeats skipped)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or fields:
                yield SseEvent(fields.get("id"), fields.get("event", "message"), "\n".join(data))
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value


@dataclass
class FeedFollower:
    """One district office with its feed open."""

    driver: Driver
    district: str
    ids: list[str] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)
    #: Times the stream was opened again from the last entry received.
    resumed: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)
    last_at: float = field(default_factory=time.monotonic)
    #: The feed read again from the start at the end of the day (None: not read).
    reread: list[str] | None = None

    def _headers(self) -> dict[str, str]:
        office = self.driver.signer.staff(Role.DISTRICT, f"{self.district}-office-1", self.district)
        return {**office, "Accept": "text/event-stream"}

    async def follow(self, client: httpx.AsyncClient) -> None:
        """Keep the feed open, resuming after the last entry, until cancelled."""
        while True:
            headers = self._headers()
            params = {"from": "start"}
            if self.ids:
                headers["Last-Event-ID"] = self.ids[-1]
                params = {}
            url = f"{self.driver.at('reporting')}/v1/feeds/{self.district}/events"
            try:
                async with client.stream("GET", url, params=params, headers=headers) as response:
                    if response.status_code != 200:
                        await response.aread()
                        self.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                        await asyncio.sleep(1.0)
                        continue
                    async for event in sse_events(response):
                        if event.event == "dropped":
                            self.dropped += 1
                            break
                        if event.id is not None:
                            self.ids.append(event.id)
                            self.types[event.event] += 1
                            self.last_at = time.monotonic()
            except httpx.HTTPError as exc:
                self.errors.append(repr(exc)[:200])
                await asyncio.sleep(0.5)
            self.resumed += 1

    async def read_again(self, client: httpx.AsyncClient) -> None:
        """The feed from the start, until it has sent nothing for ``QUIET_SECONDS``."""
        url = f"{self.driver.at('reporting')}/v1/feeds/{self.district}/events"
        ids: list[str] = []
        with contextlib.suppress(TimeoutError):
            async with client.stream(
                "GET", url, params={"from": "start"}, headers=self._headers()
            ) as response:
                response.raise_for_status()
                events = aiter(sse_events(response))
                while True:
                    event = await asyncio.wait_for(anext(events), QUIET_SECONDS)
                    if event.id is not None and event.event != "dropped":
                        ids.append(event.id)
        self.reread = ids

    @property
    def matches(self) -> bool:
        """What arrived live is the log: every entry once, in order."""
        return self.reread is not None and self.ids == self.reread

    def as_dict(self) -> dict[str, Any]:
        """For the demo's JSON summary."""
        return {
            "received": len(self.ids),
            "distinct": len(set(self.ids)),
            "reread": None if self.reread is None else len(self.reread),
            "matches": self.matches,
            "resumed": self.resumed,
            "dropped": self.dropped,
            "errors": self.errors[:5],
            "by_type": dict(self.types),
        }


class Offices:
    """Every district office of the day, each following its feed."""

    def __init__(self, driver: Driver):
        self.followers = [FeedFollower(driver, d) for d in driver.plan.districts()]
        # Long-lived streams of their own, not taking the driver's connections.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Open every feed."""
        self._tasks = [asyncio.create_task(f.follow(self._client)) for f in self.followers]

    async def finish(self, timeout: float = 60.0) -> None:
        """Once nothing new has come for a while, close the feeds and read each one again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            quiet = min(time.monotonic() - f.last_at for f in self.followers)
            if quiet >= QUIET_SECONDS:
                break
            await asyncio.sleep(0.5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await asyncio.gather(*(f.read_again(self._client) for f in self.followers))
        finally:
            await self._client.aclose()

    def lines(self) -> list[str]:
        """The offices' line under the report."""
        parts = [
            f"{district_label(f.district)} {len(f.ids):,}"
            + ("" if f.matches else " ✗ (differs from the log read again)")
            for f in self.followers
        ]
        verdict = (
            "each entry once, in order, as the log read again"
            if all(f.matches for f in self.followers)
            else "NOT all as the log read again"
        )
        return [
            f"各区实时订阅 district offices followed their feeds: {', '.join(parts)} ({verdict})"
        ]


def feed_summary(offices: Offices) -> dict[str, Any]:
    """Each district's feed, as its office followed it."""
    return {f.district: f.as_dict() for f in offices.followers}
