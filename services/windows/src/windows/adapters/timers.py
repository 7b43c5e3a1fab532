"""Durable timers of the window boundaries in Redis: one sorted set per market, claimed in Lua.

Each market's keys share the hash tag ``{m:<market>}``, so a script touching them runs unchanged
on a single Redis and on a Redis Cluster. The scripts take every key in ``KEYS`` and their
inputs as one JSON object of named fields. A global sorted set (market -> earliest due) lives in
another slot and is only a hint for which markets to claim; see :meth:`TimerStore.due_markets`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from contracts.catalogue import District
from contracts.envelope import Envelope
from contracts.events import (
    CheckInDeadlinePassed,
    WindowClosed,
    WindowClosingSoon,
    WindowEvent,
    WindowOpened,
)
from windows.domain.timeline import Boundary, BoundaryKind, Timing, classify


def _script(name: str) -> str:
    return resources.files("windows.adapters").joinpath("lua", name).read_text()


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass(frozen=True)
class MarketKeys:
    """The Redis keys of one market's timers, all in the ``{m:<market>}`` slot."""

    prefix: str
    market_id: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}windows:{{m:{self.market_id}}}:{name}"

    @property
    def timers(self) -> str:
        """Sorted set: boundary id -> due epoch ms."""
        return self._key("timers")

    @property
    def boundaries(self) -> str:
        """Hash: boundary id -> boundary JSON."""
        return self._key("boundaries")

    @property
    def published(self) -> str:
        """Sorted set: boundary id -> publish epoch ms (kept for ``retain``)."""
        return self._key("published")

    @property
    def outbox(self) -> str:
        """Stream: the market's outbox, relayed to Kafka in order."""
        return self._key("outbox")


def boundary_to_json(boundary: Boundary, district: District) -> str:
    """The stored form of a pending boundary (with the district its event needs)."""
    return json.dumps(
        {
            "id": boundary.id,
            "market_id": boundary.market_id,
            "window_id": boundary.window_id,
            "date": boundary.date.isoformat(),
            "kind": boundary.kind.value,
            "due": boundary.due.isoformat(),
            "starts_at": boundary.starts_at.isoformat(),
            "ends_at": boundary.ends_at.isoformat(),
            "district": district.value,
        }
    )


def boundary_from_json(raw: str | bytes) -> tuple[Boundary, District]:
    """The boundary and district stored by :func:`boundary_to_json`."""
    d = json.loads(raw)
    boundary = Boundary(
        id=d["id"],
        market_id=d["market_id"],
        window_id=d["window_id"],
        date=date.fromisoformat(d["date"]),
        kind=BoundaryKind(d["kind"]),
        due=datetime.fromisoformat(d["due"]),
        starts_at=datetime.fromisoformat(d["starts_at"]),
        ends_at=datetime.fromisoformat(d["ends_at"]),
    )
    return boundary, District(d["district"])


def boundary_event(boundary: Boundary, district: District) -> WindowEvent:
    """The contract event a boundary announces."""
    common: dict[str, Any] = {
        "market_id": boundary.market_id,
        "date": boundary.date,
        "window_id": boundary.window_id,
        "district": district,
    }
    match boundary.kind:
        case BoundaryKind.OPENED:
            return WindowOpened(**common, closes_at=boundary.ends_at)
        case BoundaryKind.CHECK_IN_DEADLINE_PASSED:
            return CheckInDeadlinePassed(**common, deadline=boundary.due)
        case BoundaryKind.CLOSING_SOON:
            return WindowClosingSoon(**common, closes_at=boundary.ends_at)
        case BoundaryKind.CLOSED:
            return WindowClosed(**common)


@dataclass(frozen=True)
class Claimed:
    """What one claim call took: boundary ids in publish order, and the earliest still pending."""

    ids: tuple[str, ...]
    next_due: datetime | None


class TimerStore:
    """Per-market durable timers with an exactly-once claim into the market's outbox."""

    def __init__(
        self,
        redis: Redis | RedisCluster,
        prefix: str = "",
        source: str = "/services/windows",
        retain: timedelta = timedelta(days=3),
        outbox_maxlen: int = 100_000,
        stale_after: timedelta = timedelta(days=1),
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.source = source
        self.retain = retain
        self.outbox_maxlen = outbox_maxlen
        self.stale_after = stale_after
        self._schedule = redis.register_script(_script("schedule.lua"))
        self._claim = redis.register_script(_script("claim.lua"))
        self._unschedule = redis.register_script(_script("unschedule.lua"))

    def keys(self, market_id: str) -> MarketKeys:
        """The keys of one market."""
        return MarketKeys(self.prefix, market_id)

    @property
    def index(self) -> str:
        """Global sorted set market -> earliest due ms (its own slot; a hint, see due_markets)."""
        return f"{self.prefix}windows:due-markets"

    async def schedule(self, district: District, boundaries: Iterable[Boundary]) -> int:
        """Add pending boundaries (grouped per market); returns how many were new."""
        per_market: dict[str, list[Boundary]] = {}
        for b in boundaries:
            per_market.setdefault(b.market_id, []).append(b)
        added = 0
        for market_id, items in per_market.items():
            k = self.keys(market_id)
            args = {
                "items": [
                    {"id": b.id, "due_ms": _ms(b.due), "json": boundary_to_json(b, district)}
                    for b in items
                ]
            }
            count, first = await self._schedule(
                keys=[k.timers, k.boundaries, k.published], args=[json.dumps(args)]
            )
            added += int(count)
            await self._index(market_id, first)
        return added

    async def claim_due(
        self,
        market_id: str,
        now: datetime,
        on_claim: Callable[[Boundary, Timing], None] | None = None,
    ) -> Claimed:
        """Publish (into the outbox) every boundary of the market due by ``now``, in order.

        Boundaries over ``stale_after`` old are recorded as published but not appended.
        ``on_claim`` sees each boundary this call took, with its timing (for metrics, logs).
        """
        k = self.keys(market_id)
        due = await self.redis.zrangebyscore(k.timers, "-inf", _ms(now))
        events: dict[str, dict[str, Any]] = {}
        found: dict[str, tuple[Boundary, Timing]] = {}
        if due:
            raws = await self.redis.hmget(k.boundaries, due)
            for raw in raws:
                if raw is None:
                    continue
                boundary, district = boundary_from_json(raw)
                timing = classify(boundary, now, stale_after=self.stale_after).timing
                found[boundary.id] = (boundary, timing)
                if timing is Timing.STALE:
                    events[boundary.id] = {"record_only": True}
                    continue
                event = boundary_event(boundary, district)
                envelope = Envelope.wrap(
                    event, source=self.source, time=boundary.due, event_id=boundary.id
                )
                events[boundary.id] = {
                    "topic": event.topic,
                    "key": event.market_id,
                    "event_id": envelope.id,
                    "type": envelope.type,
                    "value": envelope.model_dump_json(),
                }
        args = {
            "now_ms": _ms(now),
            "retain_ms": int(self.retain.total_seconds() * 1000),
            "maxlen": self.outbox_maxlen,
            "events": events,
        }
        claimed, first = await self._claim(
            keys=[k.timers, k.boundaries, k.published, k.outbox], args=[json.dumps(args)]
        )
        ids = tuple(i.decode() if isinstance(i, bytes) else str(i) for i in claimed)
        if on_claim is not None:
            for i in ids:
                on_claim(*found[i])
        await self._index(market_id, first)
        return Claimed(ids, _due_from(first))

    async def unschedule(self, market_id: str, from_date: date) -> list[str]:
        """Withdraw the market's pending boundaries dated ``from_date`` or later."""
        k = self.keys(market_id)
        removed, first = await self._unschedule(
            keys=[k.timers, k.boundaries], args=[json.dumps({"from_date": from_date.isoformat()})]
        )
        await self._index(market_id, first)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in removed]

    async def pending(self, market_id: str) -> list[tuple[str, datetime]]:
        """The market's pending boundary ids with their due times, earliest first."""
        rows = await self.redis.zrange(self.keys(market_id).timers, 0, -1, withscores=True)
        return [(i.decode(), datetime.fromtimestamp(s / 1000, tz=UTC)) for i, s in rows]

    async def published_at(self, market_id: str, boundary_id: str) -> datetime | None:
        """When the boundary was claimed, while that is retained."""
        score = await self.redis.zscore(self.keys(market_id).published, boundary_id)
        return None if score is None else datetime.fromtimestamp(score / 1000, tz=UTC)

    async def due_markets(self, now: datetime) -> list[str]:
        """Markets whose earliest pending boundary is due by ``now``, per the index.

        The index is in another slot than the markets' keys, so it is updated by a separate call
        after each script. It is only a hint: an entry that is too early costs one claim call that
        finds nothing; an entry lost to a race between two writers is restored by the next
        schedule/claim of that market, and the tick loop should also sweep every known market
        now and then (e.g. each minute) so that nothing waits on the hint alone.
        """
        rows = await self.redis.zrangebyscore(self.index, "-inf", _ms(now))
        return [r.decode() if isinstance(r, bytes) else str(r) for r in rows]

    async def _index(self, market_id: str, first: bytes | str) -> None:
        due = _due_from(first)
        if due is None:
            await self.redis.zrem(self.index, market_id)
        else:
            await self.redis.zadd(self.index, {market_id: _ms(due)})


def _due_from(first: bytes | str) -> datetime | None:
    text = first.decode() if isinstance(first, bytes) else str(first)
    return None if not text else datetime.fromtimestamp(float(text) / 1000, tz=UTC)
