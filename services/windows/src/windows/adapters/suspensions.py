"""A market's suspensions and emergency closures, as the windows service knows them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime

from stallkit.redis_client import RedisClient
from windows.adapters.timers import TimerStore
from windows.domain.plan import Suspension


def suspension_to_json(s: Suspension) -> str:
    """The stored form."""
    return json.dumps(
        {
            "id": s.id,
            "first_date": s.first_date.isoformat(),
            "last_date": s.last_date.isoformat(),
            "reason": s.reason,
            "declared_at": s.declared_at.isoformat(),
            "closure": s.closure,
            "lifted_at": None if s.lifted_at is None else s.lifted_at.isoformat(),
            "reopened_from": None if s.reopened_from is None else s.reopened_from.isoformat(),
        },
        ensure_ascii=False,
    )


def suspension_from_json(raw: str | bytes) -> Suspension:
    """Read back :func:`suspension_to_json`."""
    d = json.loads(raw)
    return Suspension(
        id=d["id"],
        first_date=date.fromisoformat(d["first_date"]),
        last_date=date.fromisoformat(d["last_date"]),
        reason=d["reason"],
        declared_at=datetime.fromisoformat(d["declared_at"]),
        closure=d["closure"],
        lifted_at=None if d["lifted_at"] is None else datetime.fromisoformat(d["lifted_at"]),
        reopened_from=(
            None if d["reopened_from"] is None else date.fromisoformat(d["reopened_from"])
        ),
    )


class SuspensionStore:
    """One hash per market (in its timers' slot): id -> suspension JSON."""

    def __init__(self, redis: RedisClient, timers: TimerStore):
        self.redis = redis
        self.timers = timers

    def _key(self, market_id: str) -> str:
        return self.timers.keys(market_id).suspensions

    async def all(self, market_id: str) -> list[Suspension]:
        """Every suspension and closure of the market, lifted ones included, by first date."""
        raws = await self.redis.hvals(self._key(market_id))
        found = [suspension_from_json(r) for r in raws]
        return sorted(found, key=lambda s: (s.first_date, s.declared_at, s.id))

    async def get(self, market_id: str, suspension_id: str) -> Suspension | None:
        """One suspension, or None."""
        raw = await self.redis.hget(self._key(market_id), suspension_id)
        return None if raw is None else suspension_from_json(raw)

    async def add(self, market_id: str, s: Suspension) -> bool:
        """Record a suspension unless its id is known (a redelivery); True when new."""
        return bool(await self.redis.hsetnx(self._key(market_id), s.id, suspension_to_json(s)))

    async def lift(
        self, market_id: str, suspension_id: str, lifted_at: datetime, reopened_from: date
    ) -> Suspension | None:
        """Mark a suspension lifted (the first lift counts); None when it is unknown."""
        s = await self.get(market_id, suspension_id)
        if s is None:
            return None
        if s.lifted_at is None:
            s = replace(s, lifted_at=lifted_at, reopened_from=reopened_from)
            await self.redis.hset(self._key(market_id), s.id, suspension_to_json(s))
        return s
