"""Scans, warnings, cases, the hash-chained record and the outbox, in one Redis slot.

Every decision is an optimistic transaction: WATCH what it reads (the subject's history, the
record heads, the idempotency key, the case), decide, then MULTI/EXEC all its writes: the state,
the record entries and the outbox entries of its events. A concurrent change to anything watched
re-runs the decision, so two scans of one subject cannot both be "first offences" and the record
never forks.

Within one process, decisions that append to the same district's record take turns (a lock per
district, taken at the first append and held until EXEC): they would all watch that record's
head, and letting them race only turns into re-runs. Across processes, WATCH still decides.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from contracts.envelope import Envelope, Event
from contracts.events import CaseState
from inspection.adapters.keys import Keys
from inspection.domain import record
from inspection.domain.cases import Case, HistoryItem
from stallkit.outbox import outbox_fields
from stallkit.redis_client import RedisClient

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 100
#: How long the answer to an ``Idempotency-Key`` is kept (phones queue scans up to 24 h).
IDEMPOTENCY_TTL_SECONDS = 72 * 3600


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def case_to_json(case: Case) -> str:
    """Serialize a case for storage."""
    data = asdict(case)
    for name in ("opened_at", "observed_at", "deadline", "handled_at"):
        value = data[name]
        data[name] = value.isoformat() if value is not None else None
    data["state"] = case.state.value
    data["history"] = [
        {
            **asdict(h),
            "from_state": h.from_state.value if h.from_state else None,
            "to_state": h.to_state.value,
            "at": h.at.isoformat(),
            "photos": list(h.photos),
        }
        for h in case.history
    ]
    return json.dumps(data, ensure_ascii=False)


def case_from_json(raw: str | bytes) -> Case:
    """Read back a stored case."""
    data: dict[str, Any] = json.loads(raw)
    history = tuple(
        HistoryItem(
            action=h["action"],
            from_state=CaseState(h["from_state"]) if h["from_state"] else None,
            to_state=CaseState(h["to_state"]),
            actor_id=h["actor_id"],
            role=h["role"],
            at=datetime.fromisoformat(h["at"]),
            note=h["note"],
            photos=tuple(h["photos"]),
        )
        for h in data.pop("history")
    )
    for name in ("opened_at", "observed_at", "deadline", "handled_at"):
        data[name] = _dt(data[name])
    data["state"] = CaseState(data["state"])
    return Case(**data, history=history)


class Tx:
    """One attempt of a decision: reads go straight to Redis (watched), writes are queued."""

    def __init__(
        self,
        pipe: Pipeline,
        keys: Keys,
        source: str,
        *,
        turns: AsyncExitStack | None = None,
        locks: defaultdict[str, asyncio.Lock] | None = None,
    ):
        self.pipe = pipe
        self.keys = keys
        self.source = source
        self._turns = turns
        self._locks = locks
        self.ops: list[Callable[[Pipeline], Any]] = []
        self._heads: dict[str, tuple[int, str]] = {}
        self.appended: dict[str, tuple[int, str]] = {}

    async def watch(self, *keys: str) -> None:
        """Re-run the decision if any of ``keys`` changes before it commits."""
        await self.pipe.watch(*keys)

    async def get(self, key: str) -> bytes | None:
        """A string value (watch it first if the decision depends on it)."""
        value: bytes | None = await self.pipe.get(key)
        return value

    async def count_between(self, key: str, low: float, high: float) -> int:
        """Members of a sorted set scored in [low, high)."""
        return int(await self.pipe.zcount(key, low, f"({high}"))

    def set(self, key: str, value: str, ttl_seconds: int | None = None) -> None:
        """Queue a SET."""
        self.ops.append(lambda p: p.set(key, value, ex=ttl_seconds))

    def zadd(self, key: str, member: str, score: float) -> None:
        """Queue a ZADD."""
        self.ops.append(lambda p: p.zadd(key, {member: score}))

    async def append(
        self, district: str, *, at: datetime, kind: str, ref: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Queue a record entry of ``district``, chained to the head (watched)."""
        if district not in self._heads:
            if self._turns is not None and self._locks is not None:
                await self._turns.enter_async_context(self._locks[district])
            head_key = self.keys.record_head(district)
            await self.pipe.watch(head_key)
            raw = await self.pipe.hgetall(head_key)
            seq = int(raw.get(b"seq", 0))
            self._heads[district] = (seq, raw.get(b"hash", record.GENESIS.encode()).decode())
        seq, prev = self._heads[district]
        entry = record.seal(
            seq=seq + 1, prev=prev, at=at.isoformat(), kind=kind, ref=ref, data=data
        )
        self._heads[district] = (seq + 1, entry["hash"])
        self.appended[district] = (seq + 1, entry["hash"])
        text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        list_key, head_key = self.keys.record(district), self.keys.record_head(district)
        self.ops.append(lambda p: p.rpush(list_key, text))
        self.ops.append(lambda p: p.hset(head_key, mapping={"seq": seq + 1, "hash": entry["hash"]}))
        return entry

    def publish(self, event: Event, at: datetime) -> str:
        """Queue an event on the outbox; its envelope id."""
        envelope = Envelope.wrap(event, source=self.source, time=at)
        fields = outbox_fields(event, envelope)
        stream = self.keys.outbox()
        self.ops.append(lambda p: p.xadd(stream, fields))
        return envelope.id


class EnforcementStore:
    """The Redis side of inspection's decisions."""

    def __init__(self, redis: RedisClient, keys: Keys, source: str):
        self.redis = redis
        self.keys = keys
        self.source = source
        #: One lock per district record: this process's appends to it take turns.
        self._record_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def run(self, decide: Callable[[Tx], Awaitable[T]], *, watch: Sequence[str] = ()) -> T:
        """Run ``decide`` until its writes commit with nothing it read changed meanwhile."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            async with (
                AsyncExitStack() as turns,
                self.redis.pipeline(transaction=True) as pipe,
            ):
                try:
                    if watch:
                        await pipe.watch(*watch)
                    tx = Tx(pipe, self.keys, self.source, turns=turns, locks=self._record_locks)
                    result = await decide(tx)
                    pipe.multi()
                    for op in tx.ops:
                        op(pipe)
                    await pipe.execute()
                    return result
                except WatchError:
                    log.debug(
                        "decision re-run after a concurrent change", extra={"attempt": attempt}
                    )
        raise RuntimeError("a decision kept conflicting with concurrent ones")

    async def get_json(self, key: str) -> Any:
        """A stored JSON value, or None."""
        raw = await self.redis.get(key)
        return None if raw is None else json.loads(raw)

    async def get_case(self, case_id: str) -> Case | None:
        """A case by id."""
        raw = await self.redis.get(self.keys.case(case_id))
        return None if raw is None else case_from_json(raw)

    async def get_cases(self, case_ids: Sequence[str]) -> list[Case]:
        """Cases by id, those that exist, in order."""
        if not case_ids:
            return []
        raws = await self.redis.mget([self.keys.case(c) for c in case_ids])
        return [case_from_json(r) for r in raws if r is not None]

    async def district_case_ids(self, district: str) -> list[str]:
        """A district's case ids, newest first."""
        ids = await self.redis.zrevrange(self.keys.district_cases(district), 0, -1)
        return [i.decode() for i in ids]

    async def subject_items(self, subject: str) -> list[dict[str, Any]]:
        """A subject's warnings and cases (their stored JSON), newest first."""
        refs = [
            r.decode() for r in await self.redis.zrevrange(self.keys.subject_items(subject), 0, -1)
        ]
        keys = [self.keys.warning(r) if r.startswith("wn_") else self.keys.case(r) for r in refs]
        raws = await self.redis.mget(keys) if keys else []
        return [json.loads(r) for r in raws if r is not None]

    async def record_entries(self, district: str) -> list[dict[str, Any] | None]:
        """A district's record as stored (None for an entry that is not JSON)."""
        out: list[dict[str, Any] | None] = []
        for raw in await self.redis.lrange(self.keys.record(district), 0, -1):
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            out.append(value if isinstance(value, dict) else None)
        return out

    async def record_head(self, district: str) -> tuple[int, str] | None:
        """The district record's last sequence number and hash, if it has any."""
        raw = await self.redis.hgetall(self.keys.record_head(district))
        if not raw:
            return None
        return int(raw[b"seq"]), raw[b"hash"].decode()
