"""Durable timers in Redis: a sorted set per market, claimed in Lua into a sharded outbox.

A market's keys and its outbox stream share the hash tag ``{w:<shard>}`` (the market's shard of
:data:`SHARDS`), so one script can claim a market's due timers and append their events to the
outbox atomically, unchanged on a single Redis and on a Redis Cluster; a relay per shard moves
the events to Kafka in order. The scripts take every key in ``KEYS`` and their inputs as one
JSON object of named fields. A global sorted set (market -> earliest due) lives in another slot
and is only a hint for which markets to claim; see :meth:`TimerStore.due_markets`.

Scores are the due time in epoch milliseconds plus ``rank / 8``, so that timers due at the same
instant are claimed in a fixed order (a window closes before the next one opens).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

from contracts.envelope import Envelope
from contracts.events import EVENTS_BY_TYPE, WindowCancelled
from stallkit.redis_client import RedisClient
from windows.domain.plan import Plan, Timer
from windows.domain.timeline import RANKS, Lateness, Timing, classify

#: Outbox shards. Fixed: a market's keys live in its shard's slot, so changing it would strand
#: pending timers (it would need a migration).
SHARDS = 8


def _script(name: str) -> str:
    return resources.files("windows.adapters").joinpath("lua", name).read_text()


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def shard_of(market_id: str) -> int:
    """The market's outbox shard (stable: CRC-32 of its id)."""
    return zlib.crc32(market_id.encode()) % SHARDS


@dataclass(frozen=True)
class MarketKeys:
    """The Redis keys of one market's timers, all in its shard's ``{w:<shard>}`` slot."""

    prefix: str
    market_id: str

    @property
    def tag(self) -> str:
        """The hash tag shared with the shard's outbox."""
        return f"{{w:{shard_of(self.market_id)}}}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}windows:{self.tag}:{self.market_id}:{name}"

    @property
    def timers(self) -> str:
        """Sorted set: timer id -> due epoch ms (+ rank / 8)."""
        return self._key("timers")

    @property
    def boundaries(self) -> str:
        """Hash: timer id -> timer JSON."""
        return self._key("boundaries")

    @property
    def published(self) -> str:
        """Sorted set: timer id (or cancellation id) -> publish epoch ms, kept for ``retain``."""
        return self._key("published")

    @property
    def suspensions(self) -> str:
        """Hash: suspension or closure id -> its JSON (see ``adapters.suspensions``)."""
        return self._key("suspensions")

    @property
    def plan(self) -> str:
        """String: the stamp of the last plan applied."""
        return self._key("plan")

    @property
    def outbox(self) -> str:
        """Stream: the shard's outbox, relayed to Kafka in order."""
        return outbox_key(self.prefix, shard_of(self.market_id))


def outbox_key(prefix: str, shard: int) -> str:
    """The outbox stream of one shard."""
    return f"{prefix}windows:{{w:{shard}}}:outbox"


def timer_to_json(timer: Timer) -> str:
    """The stored form of a pending timer."""
    return json.dumps(
        {
            "id": timer.id,
            "market_id": timer.market_id,
            "kind": timer.kind,
            "due": timer.due.isoformat(),
            "type": timer.event.event_type(),
            "event": timer.event.model_dump(mode="json", exclude_none=True),
            "date": None if timer.day is None else timer.day.isoformat(),
            "instance": timer.instance,
            "opened_id": timer.opened_id,
            "planned": timer.planned,
        },
        ensure_ascii=False,
    )


def timer_from_json(raw: str | bytes) -> Timer:
    """The timer stored by :func:`timer_to_json`."""
    d = json.loads(raw)
    return Timer(
        id=d["id"],
        market_id=d["market_id"],
        kind=d["kind"],
        due=datetime.fromisoformat(d["due"]),
        event=EVENTS_BY_TYPE[d["type"]].model_validate(d["event"]),
        day=None if d["date"] is None else date.fromisoformat(d["date"]),
        instance=d["instance"],
        opened_id=d["opened_id"],
        planned=d["planned"],
    )


def _until(now: datetime) -> str:
    """The score range end of timers due by ``now``: its millisecond, whatever their rank."""
    return f"({_ms(now) + 1}"


def _score(timer: Timer) -> str:
    # A string: Lua would print a number with 14 significant digits, losing the rank.
    return repr(_ms(timer.due) + RANKS[timer.kind] / 8)


@dataclass(frozen=True)
class Claimed:
    """What one claim call took: timer ids in publish order, and the earliest still pending."""

    ids: tuple[str, ...]
    next_due: datetime | None


@dataclass(frozen=True)
class ClaimedTimer:
    """One timer a claim took: what the tick loop's metrics and logs need."""

    id: str
    market_id: str
    kind: str
    due: datetime


#: Sees each claimed timer with its timing and lateness.
OnClaim = Callable[[ClaimedTimer, Timing, timedelta], None]


@dataclass(frozen=True)
class Replanned:
    """What a plan changed: timers added, instances withdrawn; ``stale`` when it was refused."""

    added: int
    withdrawn: tuple[str, ...]
    stale: bool = False


class TimerStore:
    """Per-market durable timers with an exactly-once claim into the shard's outbox."""

    def __init__(
        self,
        redis: RedisClient,
        prefix: str = "",
        source: str = "/services/windows",
        retain: timedelta = timedelta(days=9),
        outbox_maxlen: int = 100_000,
        tolerance: timedelta = timedelta(seconds=5),
        stale_after: timedelta = timedelta(days=1),
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.source = source
        self.retain = retain
        self.outbox_maxlen = outbox_maxlen
        self.tolerance = tolerance
        self.stale_after = stale_after
        self._schedule = redis.register_script(_script("schedule.lua"))
        self._claim = redis.register_script(_script("claim.lua"))
        self._claim_many = redis.register_script(_script("claim_many.lua"))
        self._replan = redis.register_script(_script("replan.lua"))

    def keys(self, market_id: str) -> MarketKeys:
        """The keys of one market."""
        return MarketKeys(self.prefix, market_id)

    def outboxes(self) -> list[str]:
        """Every shard's outbox stream."""
        return [outbox_key(self.prefix, shard) for shard in range(SHARDS)]

    @property
    def index(self) -> str:
        """Global sorted set market -> earliest due ms (its own slot; a hint, see due_markets)."""
        return f"{self.prefix}windows:due-markets"

    def _item(self, timer: Timer) -> dict[str, Any]:
        """A timer as the scripts take it: id, score, stored JSON (with its rendered envelope)."""
        stored = json.loads(timer_to_json(timer))
        stored["rendered"] = self._envelope(timer, {})
        return {
            "id": timer.id,
            "score": _score(timer),
            "json": json.dumps(stored, ensure_ascii=False),
            "opened_id": timer.opened_id or False,
        }

    def _envelope(self, timer: Timer, fields: dict[str, Any]) -> dict[str, Any]:
        event = type(timer.event).model_validate({**timer.event.model_dump(), **fields})
        envelope = Envelope.wrap(event, source=self.source, time=timer.due, event_id=timer.id)
        return {
            "topic": event.topic,
            "key": event.market_id,
            "event_id": envelope.id,
            "type": envelope.type,
            "value": envelope.model_dump_json(),
        }

    async def schedule(self, timers: Iterable[Timer]) -> int:
        """Add pending timers (grouped per market) unless published; returns how many were new."""
        per_market: dict[str, list[Timer]] = {}
        for t in timers:
            per_market.setdefault(t.market_id, []).append(t)
        added = 0
        for market_id, items in per_market.items():
            k = self.keys(market_id)
            args = {"items": [self._item(t) for t in items]}
            count, first = await self._schedule(
                keys=[k.timers, k.boundaries, k.published], args=[json.dumps(args)]
            )
            added += int(count)
            await self._index(market_id, first)
        return added

    async def replan(self, plan: Plan, now: datetime) -> Replanned:
        """Apply ``plan`` to the market's timers in one atomic step (see :class:`Plan`)."""
        k = self.keys(plan.market_id)
        cancels: dict[str, dict[str, Any]] = {}
        for raw in await self.redis.hvals(k.boundaries):
            timer = timer_from_json(raw)
            if (
                not timer.planned
                or timer.id in plan.valid
                or timer.instance is None
                or timer.day is None
                or timer.day < plan.from_date
                or timer.instance in cancels
            ):
                continue
            cause, reason = plan.cause(timer.day)
            window_id = timer.instance.split("|", 1)[1]
            cancelled = WindowCancelled(
                market_id=plan.market_id,
                date=timer.day,
                window_id=window_id,
                district=plan.district,
                cause=cause,
                reason=reason,
            )
            cancel_id = f"{timer.opened_id}:cancelled"
            envelope = Envelope.wrap(cancelled, source=self.source, time=now, event_id=cancel_id)
            cancels[timer.instance] = {
                "id": cancel_id,
                "topic": cancelled.topic,
                "key": plan.market_id,
                "event_id": envelope.id,
                "type": envelope.type,
                "value": envelope.model_dump_json(),
            }
        args = {
            "now_ms": _ms(now),
            "stamp": str(plan.stamp_ms),
            "from_date": plan.from_date.isoformat(),
            "items": [self._item(t) for t in plan.items],
            "valid": dict.fromkeys(plan.valid, True),
            "cancels": cancels,
            "force": [self._item(t) for t in plan.force],
            "remove": list(plan.remove),
            "maxlen": self.outbox_maxlen,
        }
        added, withdrawn, first = await self._replan(
            keys=[k.timers, k.boundaries, k.published, k.outbox, k.plan], args=[json.dumps(args)]
        )
        if int(added) < 0:
            return Replanned(0, (), stale=True)
        await self._index(plan.market_id, first)
        return Replanned(int(added), tuple(_text(i) for i in withdrawn))

    async def claim_due(
        self,
        market_id: str,
        now: datetime,
        on_claim: OnClaim | None = None,
    ) -> Claimed:
        """Publish (into the outbox) every timer of the market due by ``now``, in order.

        Late ones carry ``late_by_seconds``; those over ``stale_after`` old are recorded as
        published but not appended. ``on_claim`` sees each timer this call took, with its timing
        and lateness (for metrics and logs).
        """
        k = self.keys(market_id)
        until = _until(now)
        due = await self.redis.zrangebyscore(k.timers, "-inf", until)
        if not due:  # nothing to claim: only set the hint right
            first = await self.redis.zrange(k.timers, 0, 0, withscores=True)
            score = repr(first[0][1]) if first else ""
            await self._index(market_id, score)
            return Claimed((), _due_from(score))
        events: dict[str, dict[str, Any]] = {}
        found: dict[str, tuple[ClaimedTimer, Timing, timedelta]] = {}
        for raw in await self.redis.hmget(k.boundaries, due):
            if raw is None:
                continue
            timer = timer_from_json(raw)
            lateness = classify(
                timer.due, now, tolerance=self.tolerance, stale_after=self.stale_after
            )
            seen = ClaimedTimer(timer.id, timer.market_id, timer.kind, timer.due)
            found[timer.id] = (seen, lateness.timing, lateness.late_by)
            if lateness.timing is Timing.STALE:
                events[timer.id] = {"record_only": True}
                continue
            extra: dict[str, Any] = {}
            if lateness.timing is Timing.LATE:
                extra["late_by_seconds"] = round(lateness.late_by.total_seconds(), 3)
            events[timer.id] = self._envelope(timer, extra)
        args = {
            "now_ms": _ms(now),
            "due_by": until,
            "retain_ms": int(self.retain.total_seconds() * 1000),
            "maxlen": self.outbox_maxlen,
            "events": events,
        }
        claimed, first = await self._claim(
            keys=[k.timers, k.boundaries, k.published, k.outbox], args=[json.dumps(args)]
        )
        ids = tuple(_text(i) for i in claimed)
        if on_claim is not None:
            for i in ids:
                on_claim(*found[i])
        await self._index(market_id, first)
        return Claimed(ids, _due_from(first))

    async def claim_many(
        self, market_ids: Sequence[str], now: datetime, on_claim: OnClaim | None = None
    ) -> dict[str, Claimed]:
        """Claim the due timers of many markets, one script call per shard (the fast path).

        Timers claimed on time go out with the envelope rendered when they were scheduled; a
        market whose next due timer is late continues through :meth:`claim_due`, which renders
        its lateness. Returns what was claimed per market.
        """
        by_shard: dict[int, list[str]] = {}
        for market_id in market_ids:
            by_shard.setdefault(shard_of(market_id), []).append(market_id)
        args = json.dumps(
            {
                "now_ms": _ms(now),
                "due_by": _until(now),
                "tolerance_ms": int(self.tolerance.total_seconds() * 1000),
                "retain_ms": int(self.retain.total_seconds() * 1000),
                "maxlen": self.outbox_maxlen,
            }
        )
        claimed: dict[str, Claimed] = {}
        hints: dict[str, datetime | None] = {}
        slow: list[str] = []
        for shard, markets in by_shard.items():
            keys = [
                key
                for m in markets
                for key in (self.keys(m).timers, self.keys(m).boundaries, self.keys(m).published)
            ]
            results = await self._claim_many(
                keys=[*keys, outbox_key(self.prefix, shard)], args=[args]
            )
            for market_id, (taken, first, rest) in zip(markets, results, strict=True):
                rows = [_text(x) for x in taken]
                ids = tuple(rows[0::3])
                if on_claim is not None:
                    for i, kind, due_ms in zip(rows[0::3], rows[1::3], rows[2::3], strict=True):
                        due = datetime.fromtimestamp(int(due_ms) / 1000, tz=UTC)
                        timing = classify(due, now, self.tolerance, self.stale_after)
                        on_claim(ClaimedTimer(i, market_id, kind, due), *_pair(timing))
                claimed[market_id] = Claimed(ids, _due_from(first))
                if int(rest):
                    slow.append(market_id)
                else:
                    hints[market_id] = _due_from(first)
        await self._index_many(hints)
        for market_id in slow:
            more = await self.claim_due(market_id, now, on_claim)
            claimed[market_id] = Claimed(claimed[market_id].ids + more.ids, more.next_due)
        return claimed

    async def pending(self, market_id: str) -> list[Timer]:
        """The market's pending timers, in claim order."""
        k = self.keys(market_id)
        ids = await self.redis.zrange(k.timers, 0, -1)
        if not ids:
            return []
        raws = await self.redis.hmget(k.boundaries, ids)
        return [timer_from_json(raw) for raw in raws if raw is not None]

    async def pending_between(self, market_id: str, start: datetime, end: datetime) -> list[Timer]:
        """The market's pending timers due in ``[start, end)``, in claim order."""
        k = self.keys(market_id)
        ids = await self.redis.zrangebyscore(k.timers, _ms(start), f"({_ms(end)}")
        if not ids:
            return []
        raws = await self.redis.hmget(k.boundaries, ids)
        return [timer_from_json(raw) for raw in raws if raw is not None]

    async def published_at(self, market_id: str, ids: Sequence[str]) -> dict[str, datetime]:
        """When each of ``ids`` was published (or withdrawn, for cancellations), if retained."""
        if not ids:
            return {}
        scores = await self.redis.zmscore(self.keys(market_id).published, list(ids))
        return {
            i: datetime.fromtimestamp(s / 1000, tz=UTC)
            for i, s in zip(ids, scores, strict=True)
            if s is not None
        }

    async def count_due(self, market_ids: Sequence[str], now: datetime) -> int:
        """How many timers of ``market_ids`` are due by ``now`` and not yet claimed."""
        total = 0
        for market_id in market_ids:
            total += int(await self.redis.zcount(self.keys(market_id).timers, "-inf", _until(now)))
        return total

    async def due_markets(self, now: datetime) -> list[str]:
        """Markets whose earliest pending timer is due by ``now``, per the index.

        The index is in another slot than the markets' keys, so it is updated by a separate call
        after each script. It is only a hint: an entry that is too early costs one claim call
        that finds nothing; an entry lost to a race between two writers is restored by the next
        schedule/claim of that market, and the tick loop also sweeps every known market now and
        then, so that nothing waits on the hint alone.
        """
        rows = await self.redis.zrangebyscore(self.index, "-inf", _ms(now))
        return [_text(r) for r in rows]

    async def next_due(self) -> datetime | None:
        """The earliest due time in the index (a hint for how long the tick loop may sleep)."""
        rows = await self.redis.zrange(self.index, 0, 0, withscores=True)
        return None if not rows else datetime.fromtimestamp(int(rows[0][1]) / 1000, tz=UTC)

    async def _index_many(self, hints: dict[str, datetime | None]) -> None:
        """Set many markets' entries in the due hint in one round trip."""
        if not hints:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for market_id, due in hints.items():
                if due is None:
                    pipe.zrem(self.index, market_id)
                else:
                    pipe.zadd(self.index, {market_id: _ms(due)})
            await pipe.execute()

    async def _index(self, market_id: str, first: bytes | str) -> None:
        due = _due_from(first)
        if due is None:
            await self.redis.zrem(self.index, market_id)
        else:
            await self.redis.zadd(self.index, {market_id: _ms(due)})


def _pair(lateness: Lateness) -> tuple[Timing, timedelta]:
    return lateness.timing, lateness.late_by


def _due_from(first: bytes | str) -> datetime | None:
    text = _text(first)
    # the score's whole milliseconds: its fraction is the rank
    return None if not text else datetime.fromtimestamp(int(float(text)) / 1000, tz=UTC)
