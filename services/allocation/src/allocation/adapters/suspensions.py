"""Market suspensions in Redis: each declared and lifted in one Lua script with its event.

A suspension is a record in the market's ``suspensions`` hash (id -> JSON) plus one
``suspended:{market}:{date}`` key per date holding the reason the booking script refuses with.
Records are kept after they are lifted (``lifted_at`` set), so an id is applied once: a retry,
a redelivered event or windows re-announcing a suspension allocation declared finds its id.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

from allocation.adapters.keys import Keys
from stallkit.redis_client import RedisClient


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


def dates_between(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included (empty when reversed)."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class Suspension:
    """A declared market suspension."""

    id: str
    market_id: str
    first_date: date
    last_date: date
    reason: str
    #: ``admin`` (declared through the admin API) or ``windows`` (a ``market.suspended`` event).
    origin: str
    declared_at: datetime | None
    lifted_at: datetime | None = None
    #: First date the lift reopened (dates before it stayed as they were).
    reopened_from: date | None = None

    @property
    def in_force(self) -> bool:
        """Not lifted."""
        return self.lifted_at is None

    def record(self) -> str:
        """The stored JSON."""
        return json.dumps(
            {
                "suspension_id": self.id,
                "first_date": self.first_date.isoformat(),
                "last_date": self.last_date.isoformat(),
                "reason": self.reason,
                "origin": self.origin,
                "declared_at": self.declared_at.isoformat() if self.declared_at else None,
                "lifted_at": None,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_record(cls, market_id: str, raw: bytes | str) -> Suspension:
        """Parse a stored record (records written before ``origin`` existed included)."""
        r = json.loads(raw)

        def when(name: str) -> datetime | None:
            return datetime.fromisoformat(r[name]) if r.get(name) else None

        return cls(
            id=r["suspension_id"],
            market_id=market_id,
            first_date=date.fromisoformat(r["first_date"]),
            last_date=date.fromisoformat(r["last_date"]),
            reason=r["reason"],
            origin=r.get("origin") or "admin",
            declared_at=when("declared_at"),
            lifted_at=when("lifted_at"),
            reopened_from=date.fromisoformat(r["reopened_from"])
            if r.get("reopened_from")
            else None,
        )


@dataclass(frozen=True)
class OutboxEntry:
    """An event for the outbox stream, written by a script."""

    topic: str
    key: str
    event_id: str
    type: str
    value: str


class SuspensionStore:
    """Declares, lifts and reads market suspensions."""

    def __init__(self, redis: RedisClient, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._declare = redis.register_script(_script("suspend.lua"))
        self._lift = redis.register_script(_script("lift.lua"))

    def _idempotency_key(self, market_id: str, key: str) -> str:
        return self.keys.k("sidem", market_id, key)

    def _day_keys(self, market_id: str, days: list[date]) -> list[str]:
        return [self.keys.suspended(market_id, d.isoformat()) for d in days]

    async def declare(
        self,
        suspension: Suspension,
        *,
        idempotency: tuple[str, str, int] | None,
        event: OutboxEntry | None,
    ) -> tuple[str, str]:
        """Write the suspension unless its id (or its Idempotency-Key) is known.

        ``idempotency`` is (key, body hash, ttl seconds). Returns (outcome, suspension id):
        ``ok``, ``replay``, ``exists`` or ``err`` with ``idempotency_key_reused``.
        """
        market = suspension.market_id
        days = dates_between(suspension.first_date, suspension.last_date)
        keys = [self.keys.suspensions(market), self.keys.outbox(), *self._day_keys(market, days)]
        inputs: dict[str, Any] = {
            "id": suspension.id,
            "record": suspension.record(),
            "reason": suspension.reason,
            "days": len(days),
            "idempotent": idempotency is not None,
        }
        if idempotency is not None:
            key, body_hash, ttl = idempotency
            keys.append(self._idempotency_key(market, key))
            inputs |= {"body_hash": body_hash, "idem_ttl": ttl}
        if event is not None:
            inputs["event"] = asdict(event)
        outcome, value = await self._declare(keys=keys, args=[json.dumps(inputs)])
        return outcome.decode(), value.decode()

    async def lift(
        self,
        suspension: Suspension,
        *,
        reopened_from: date,
        lifted_at: datetime,
        event: OutboxEntry | None,
    ) -> tuple[str, Suspension | None]:
        """Lift the suspension from ``reopened_from`` on.

        Returns (outcome, suspension as stored afterwards): ``ok`` (lifted now), ``lifted``
        (it had been lifted before) or ``err`` (no such suspension, ``None``).
        """
        market = suspension.market_id
        days = dates_between(reopened_from, suspension.last_date)
        inputs: dict[str, Any] = {
            "id": suspension.id,
            "lifted_at": lifted_at.isoformat(),
            "reopened_from": reopened_from.isoformat(),
            "days": [d.isoformat() for d in days],
        }
        if event is not None:
            inputs["event"] = asdict(event)
        keys = [self.keys.suspensions(market), self.keys.outbox(), *self._day_keys(market, days)]
        outcome, value = await self._lift(keys=keys, args=[json.dumps(inputs)])
        if outcome == b"err":
            return "err", None
        return outcome.decode(), Suspension.from_record(market, value)

    async def prior_request(self, market_id: str, key: str) -> tuple[str, str] | None:
        """(body hash, suspension id) of an earlier request with this Idempotency-Key."""
        raw = await self.redis.hmget(self._idempotency_key(market_id, key), ["hash", "suspension"])
        if raw[0] is None or raw[1] is None:
            return None
        return raw[0].decode(), raw[1].decode()

    async def get(self, market_id: str, suspension_id: str) -> Suspension | None:
        """One suspension of the market, or ``None``."""
        raw = await self.redis.hget(self.keys.suspensions(market_id), suspension_id)
        return Suspension.from_record(market_id, raw) if raw else None

    async def all(self, market_id: str) -> list[Suspension]:
        """The market's suspensions, lifted ones included, by first date then declaration."""
        raw = await self.redis.hgetall(self.keys.suspensions(market_id))
        found = [Suspension.from_record(market_id, v) for v in raw.values()]
        return sorted(found, key=lambda s: (s.first_date, str(s.declared_at or ""), s.id))

    async def suspended_days(self, market_id: str, days: list[date]) -> list[date]:
        """Which of ``days`` are suspended now."""
        if not days:
            return []
        values = await self.redis.mget(self._day_keys(market_id, days))
        return [d for d, v in zip(days, values, strict=True) if v is not None]

    async def reason_on(self, market_id: str, day: date) -> str | None:
        """Why the market is suspended on ``day``, or ``None`` when it is open."""
        raw = await self.redis.get(self.keys.suspended(market_id, day.isoformat()))
        return raw.decode() if raw else None
