"""Server-Sent Events for tests: a small parser over an httpx streaming response.

It follows the parts of the WHATWG event-stream rules that the services use: ``id:``,
``event:``, ``data:`` (several lines joined with ``\\n``), comment lines (``:``, heartbeats), an
empty line dispatching the event; ``last_event_id`` is what an EventSource would send back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event."""

    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        """The data as JSON."""
        return json.loads(self.data)


class SseReader:
    """The events of one streaming response, read as they come."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self._lines = response.aiter_lines()
        self.last_event_id: str | None = None
        self.comments = 0
        self.ended = False

    async def _next(self) -> SseEvent | None:
        event, event_id = "", None
        data: list[str] = []
        async for line in self._lines:
            if not line:
                if data:
                    return SseEvent(event or "message", "\n".join(data), event_id)
                event, data, event_id = "", [], None
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id" and "\0" not in value:
                event_id = self.last_event_id = value
        self.ended = True
        return None

    async def next(self, timeout: float = 30.0) -> SseEvent | None:
        """The next event, or None when the stream ends; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            return await self._next()

    async def take(self, n: int, timeout: float = 30.0) -> list[SseEvent]:
        """The next ``n`` events (fewer if the stream ends first), within ``timeout`` in all."""
        events: list[SseEvent] = []
        async with asyncio.timeout(timeout):
            while len(events) < n:
                event = await self._next()
                if event is None:
                    break
                events.append(event)
        return events

    async def until(
        self, done: Callable[[list[SseEvent]], bool], timeout: float = 30.0
    ) -> list[SseEvent]:
        """Events until ``done(events)`` holds or the stream ends, within ``timeout``."""
        events: list[SseEvent] = []
        async with asyncio.timeout(timeout):
            while not done(events):
                event = await self._next()
                if event is None:
                    break
                events.append(event)
        return events

    async def rest(self, timeout: float = 30.0) -> tuple[list[SseEvent], Exception | None]:
        """Every event left until the server closes the stream, and how the stream ended: None
        when it ended cleanly, else the transport error (a connection cut mid-response)."""
        events: list[SseEvent] = []
        async with asyncio.timeout(timeout):
            try:
                while (event := await self._next()) is not None:
                    events.append(event)
            except httpx.TransportError as exc:
                self.ended = True
                return events, exc
        return events, None
