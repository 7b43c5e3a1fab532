"""HTTP route of the district feeds as Server-Sent Events, resumable with ``Last-Event-ID``.

Each SSE event is one feed entry: ``id:`` the entry id (a position in the feed), ``event:`` the
entry type (``booking.created``), ``data:`` the entry as JSON. A client that reconnects with the
last id it got receives every later entry in order, then live ones; a stream that the service
ends says why in a last ``event: dropped`` (no ``id:``, so the client resumes where it was).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Header, Path, Query
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from contracts.catalogue import MARKET_ID_PATTERN, District
from contracts.events import ALL_EVENTS
from reporting.adapters.feed_log import FeedLog, id_before, valid_id
from reporting.config import ReportingSettings
from reporting.domain.feed import ALL, FeedEntry
from reporting.service_layer.fanout import (
    EntryFilter,
    FeedFanout,
    FeedPositionExpired,
    Subscriber,
    follow,
)
from stallkit.auth import Principal, Role, require_role
from stallkit.openapi import problems
from stallkit.problems import ProblemError, register_messages

logger = logging.getLogger(__name__)

register_messages(
    {
        "invalid_last_event_id": (
            "Last-Event-ID 不是事件流中的位置",
            "Last-Event-ID is not a feed position",
        ),
        "feed_position_expired": (
            "该位置早于保留期限，其后的部分事件已删除；请从头读取（?from=start）",
            "Entries after that position are past the feed's retention; read from ?from=start",
        ),
        "feed_position_ahead": ("事件流中尚无该位置", "The feed has no such position yet"),
    }
)

KNOWN_TYPES = frozenset(e.event_name for e in ALL_EVENTS)
FEED_PATTERN = "^(" + "|".join([*(d.value for d in District), ALL]) + ")$"
MAX_FILTER_ITEMS = 64
#: How long a dropped client's stream may take to send its last event before it is cut off.
DROP_GRACE_SECONDS = 2.0

FeedName = Annotated[
    str, Path(pattern=FEED_PATTERN, description="A district, or `all` (administrators).")
]

_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A feed entry (or, for `event: dropped`, `{reason, last_event_id}`).",
    "properties": {
        "id": {"type": "string", "description": "The entry id: its position in the feed."},
        "event_id": {"type": "string", "description": "The event's envelope id."},
        "type": {"type": "string", "examples": ["booking.created"]},
        "market_id": {"type": "string", "examples": ["XZ-03"]},
        "district": {"type": ["string", "null"], "examples": ["xiangzhou"]},
        "time": {"type": "string", "format": "date-time"},
        "summary_zh": {"type": "string"},
        "summary_en": {"type": "string"},
        "event": {"type": "object", "description": "The event's CloudEvents envelope."},
        "reason": {"type": "string", "description": "Why the service ended the stream."},
        "last_event_id": {"type": ["string", "null"]},
    },
}
#: One event of the stream, as the OpenAPI text/event-stream media type describes it.
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": r"^\d+-\d+$",
            "description": "The entry id (send it back as Last-Event-ID to resume).",
        },
        "event": {
            "type": "string",
            "description": "The entry type (`booking.created`, ...), or `dropped`.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _ENTRY_SCHEMA,
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "`text/event-stream`: one event per feed entry (`id:` entry id, `event:` entry type, "
            "`data:` the entry as JSON), comment lines as heartbeats, and a last "
            '`event: dropped` (`data: {"reason": ...}`) when the service ends the stream: '
            "`slow_consumer` (the client fell behind), `shutdown`, `store_unavailable` or "
            "`feed_position_expired`."
        ),
        "content": {
            "text/event-stream": {
                "schema": _EVENT_SCHEMA,
                "example": (
                    "id: 1763640000000-0\nevent: booking.created\n"
                    'data: {"id":"1763640000000-0","type":"booking.created",'
                    '"market_id":"XZ-03","district":"xiangzhou",...}\n\n'
                ),
            }
        },
    },
    400: {"description": "`invalid_last_event_id`: Last-Event-ID is not an entry id."},
    403: {"description": "`forbidden` (patrol, vendor), `other_district` (another district)."},
    410: {"description": "`feed_position_expired`: entries after that position were trimmed."},
    422: {
        "description": (
            "`validation_failed` (unknown district, type or market id), `feed_position_ahead` "
            "(no such position yet)."
        )
    },
}


class FeedStream(EventSourceResponse):
    """An SSE response that ends when its client is dropped, even while a write to a client
    that stopped reading is blocked (after a grace in which the last event may still go)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterator[ServerSentEvent],
        *,
        subscriber: Subscriber,
        on_close: Callable[[], None],
        ping: float,
        send_timeout: float,
    ):
        super().__init__(content, ping=ping, send_timeout=send_timeout)
        self.subscriber = subscriber
        self.on_close = on_close

    async def _cut_off(self, streaming: anyio.CancelScope) -> None:
        await self.subscriber.ended.wait()
        await asyncio.sleep(DROP_GRACE_SECONDS)
        streaming.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with anyio.CancelScope() as streaming:
                cut_off = asyncio.create_task(self._cut_off(streaming))
                try:
                    await super().__call__(scope, receive, send)
                except SendTimeoutError:
                    logger.info(
                        "feed client stopped reading",
                        extra={"feed": self.subscriber.feed},
                    )
                finally:
                    cut_off.cancel()
        finally:
            self.on_close()  # also when the stream never started


def _as_event(entry: FeedEntry) -> ServerSentEvent:
    data = json.dumps(entry.as_json(), ensure_ascii=False, separators=(",", ":"))
    return ServerSentEvent(data=data, event=entry.type, id=entry.id)


def _dropped(reason: str, last_id: str | None) -> ServerSentEvent:
    body = {"reason": reason, "last_event_id": last_id}
    return ServerSentEvent(data=json.dumps(body, separators=(",", ":")), event="dropped")


def _items(raw: str | None, name: str) -> frozenset[str] | None:
    """``a, b,c`` → the set {a, b, c}; None or blank → None (no filter)."""
    if raw is None:
        return None
    items = frozenset(item.strip() for item in raw.split(",") if item.strip())
    if len(items) > MAX_FILTER_ITEMS:
        raise ProblemError("validation_failed", 422, f"at most {MAX_FILTER_ITEMS} {name}")
    return items or None


def _wanted(types: str | None, markets: str | None) -> EntryFilter:
    wanted_types = _items(types, "types")
    if wanted_types and (unknown := sorted(wanted_types - KNOWN_TYPES)):
        raise ProblemError("validation_failed", 422, f"unknown types: {', '.join(unknown)}")
    wanted_markets = _items(markets, "markets")
    if wanted_markets:
        bad = sorted(m for m in wanted_markets if not re.fullmatch(MARKET_ID_PATTERN, m))
        if bad:
            raise ProblemError("validation_failed", 422, f"not market ids: {', '.join(bad)}")
    return EntryFilter(types=wanted_types, markets=wanted_markets)


def _may_read(principal: Principal, feed: str) -> None:
    if principal.role is Role.DISTRICT and principal.district != feed:
        raise ProblemError("other_district", 403, "a district office reads its own feed only")


def feed_router(log: FeedLog, fanout: FeedFanout, settings: ReportingSettings) -> APIRouter:
    """``GET /v1/feeds/{district}/events``: a district's feed (``all``: the city's) as SSE."""
    router = APIRouter(prefix="/v1/feeds", tags=["feeds"])

    async def position_of(feed: str, raw: str) -> str:
        if not valid_id(raw):
            raise ProblemError("invalid_last_event_id", 400, "expected <ms>-<seq>, as sent in id:")
        if await log.expired(feed, raw):
            oldest = await log.read(feed, None, 1)
            raise ProblemError(
                "feed_position_expired",
                410,
                f"entries after {raw} are past the retention",
                oldest_id=oldest[0].id if oldest else None,
            )
        if id_before(await log.last_id(feed), raw):
            raise ProblemError("feed_position_ahead", 422, f"the feed has no {raw} yet")
        return raw

    @router.get(
        "/{district}/events",
        response_model=None,
        response_class=FeedStream,
        status_code=200,
        responses={**problems(400, 403, 410, 422, 503), **_STREAM_DOC},
    )
    async def feed_events(
        district: FeedName,
        principal: Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)],
        types: Annotated[
            str | None,
            Query(
                description="Only these entry types, comma-separated.",
                examples=["booking.created,window.opened"],
            ),
        ] = None,
        markets: Annotated[
            str | None,
            Query(description="Only these markets, comma-separated.", examples=["XZ-01,XZ-02"]),
        ] = None,
        start: Annotated[
            Literal["now", "start"],
            Query(
                alias="from",
                description=(
                    "Without a Last-Event-ID: `now` (default) sends only entries appended from "
                    "now on, `start` the whole retained log first."
                ),
            ),
        ] = "now",
        last_event_id: Annotated[
            str | None,
            Query(
                description="The Last-Event-ID, for clients that cannot set the header.",
                examples=["1763640000000-0"],
            ),
        ] = None,
        last_event_id_header: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                description="Resume after this entry id (sent by EventSource on reconnecting).",
            ),
        ] = None,
    ) -> FeedStream:
        """Follow a district's feed live as Server-Sent Events, resumable without gap.

        A district office reads its own district; administrators read any, and `all`. With
        `Last-Event-ID` (header, or `?last_event_id=`; the header wins) the stream starts after
        that entry, so a reconnecting client misses nothing and gets nothing twice; a position
        older than the feed's retention is answered 410 `feed_position_expired`. Without one,
        it starts now, or at the oldest retained entry with `?from=start`. A client that falls
        too far behind is dropped (a last `event: dropped`) and resumes with its last id.
        """
        _may_read(principal, district)
        wanted = _wanted(types, markets)
        raw = last_event_id_header or last_event_id  # an empty header means none
        position = await position_of(district, raw) if raw else None
        try:
            sub = await fanout.subscribe(district, wanted)
        except TimeoutError:
            raise ProblemError("service_unavailable", 503, "the feed cannot be read now") from None
        try:
            if raw is None and start == "now":
                position = await log.last_id(district)
        except BaseException:
            fanout.unsubscribe(sub)
            raise

        async def events() -> AsyncIterator[ServerSentEvent]:
            last = position
            reason: str | None
            try:
                async for entry in follow(log, sub, position):
                    last = entry.id
                    yield _as_event(entry)
                    # A write to a client does not wait unless its buffers are full: let the
                    # others (and the news that this one went away) in between entries.
                    await asyncio.sleep(0)
                reason = sub.dropped
            except FeedPositionExpired:
                reason = "feed_position_expired"
            except (RedisError, OSError) as exc:
                logger.warning("feed stream lost Redis", extra={"error": repr(exc)})
                reason = "store_unavailable"
            finally:
                fanout.unsubscribe(sub)
            if reason is not None:
                if sub.dropped is None:
                    fanout.metrics.dropped.labels(district, reason).inc()
                yield _dropped(reason, last)

        return FeedStream(
            events(),
            subscriber=sub,
            on_close=lambda: fanout.unsubscribe(sub),
            ping=settings.feed_heartbeat_seconds,
            send_timeout=settings.feed_send_timeout_seconds,
        )

    return router
