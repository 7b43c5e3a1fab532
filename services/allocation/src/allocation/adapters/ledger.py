"""The booking ledger in Redis: one Lua script per decision, events written to the outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

from redis.asyncio import Redis

from allocation.adapters.keys import Keys
from allocation.domain.model import Booking, BookingState
from contracts.catalogue import Category


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


def _ts(value: bytes | None) -> datetime | None:
    return None if not value else datetime.fromtimestamp(float(value), tz=UTC)


@dataclass(frozen=True)
class Decision:
    """What a script decided: ``ok``/``replay`` with a value, or ``err`` with a code."""

    outcome: str
    value: str
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxEvent:
    """An event to append to the outbox inside a script."""

    topic: str
    key: str
    event_id: str
    type: str
    value: str


class Ledger:
    """Bookings, claims, counters and no-shows in Redis."""

    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._book = redis.register_script(_script("book.lua"))
        self._transition = redis.register_script(_script("transition.lua"))

    @staticmethod
    def _decision(raw: list[bytes]) -> Decision:
        parts = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
        return Decision(parts[0], parts[1], tuple(parts[2:]))

    async def book(self, inputs: list[str | int | float], envelope_json: str) -> Decision:
        """Run the booking decision script (order of ``inputs``: see book.lua)."""
        args = [self.keys.base, as_json(inputs), envelope_json]
        return self._decision(await self._book(keys=[self.keys.outbox()], args=args))

    async def transition(
        self,
        *,
        now: float,
        booking_id: str,
        owner: str | None,
        allowed_from: frozenset[BookingState],
        to_state: BookingState,
        release: bool,
        fields: dict[str, str],
        events: list[OutboxEvent],
        no_show: tuple[float, int, float, str] | None = None,
        code: tuple[str, int] | None = None,
    ) -> Decision:
        """Move a booking to ``to_state`` if it is in one of ``allowed_from``, atomically."""
        since, limit, until, until_iso = no_show or (0.0, 0, 0.0, "")
        stall, version = code or ("", 0)
        argv: list[str | int | float] = [
            self.keys.base,
            now,
            booking_id,
            owner or "",
            "," + ",".join(sorted(s.value for s in allowed_from)) + ",",
            to_state.value,
            "1" if release else "0",
            "1" if no_show else "0",
            since,
            limit,
            until,
            until_iso,
            stall,
            str(version),
            json.dumps(fields),
            len(events),
        ]
        for e in events:
            argv += [e.topic, e.key, e.event_id, e.type, e.value]
        return self._decision(await self._transition(keys=[self.keys.outbox()], args=argv))

    async def get(self, booking_id: str) -> Booking | None:
        """One booking, or ``None``."""
        raw = await self.redis.hgetall(self.keys.booking(booking_id))
        return self._booking(raw) if raw else None

    async def get_many(self, booking_ids: list[str]) -> list[Booking]:
        """Bookings by id, in order, skipping missing ones."""
        if not booking_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for bid in booking_ids:
            pipe.hgetall(self.keys.booking(bid))
        rows: list[dict[bytes, bytes]] = await pipe.execute()
        return [self._booking(r) for r in rows if r]

    async def vendor_booking_ids(self, vendor_id: str, limit: int = 200) -> list[str]:
        """A vendor's booking ids, newest window first."""
        ids = await self.redis.zrevrange(self.keys.vendor_bookings(vendor_id), 0, limit - 1)
        return [i.decode() for i in ids]

    async def window_booking_ids(self, market_id: str, day: date, window_id: str) -> list[str]:
        """Ids of bookings made for a window occurrence."""
        ids = await self.redis.smembers(
            self.keys.window_bookings(market_id, day.isoformat(), window_id)
        )
        return sorted(i.decode() for i in ids)

    async def claimed_stalls(self, stall_ids: list[str], day: date, window_id: str) -> set[str]:
        """Which of ``stall_ids`` are held by an active booking for the window."""
        if not stall_ids:
            return set()
        values = await self.redis.mget(
            [self.keys.claim(s, day.isoformat(), window_id) for s in stall_ids]
        )
        return {s for s, v in zip(stall_ids, values, strict=True) if v is not None}

    async def window_counts(self, market_id: str, day: date, window_id: str) -> tuple[int, int]:
        """(priority, standard) active bookings of a window occurrence."""
        raw = await self.redis.hmget(
            self.keys.window_counts(market_id, day.isoformat(), window_id), ["priority", "standard"]
        )
        return int(raw[0] or 0), int(raw[1] or 0)

    async def no_shows_since(self, vendor_id: str, since: float) -> int:
        """How many no-shows the vendor has since ``since``."""
        return int(await self.redis.zcount(self.keys.no_shows(vendor_id), since, "+inf"))

    async def suspend_dates(self, market_id: str, days: list[date], reason: str) -> None:
        """Mark dates suspended (the booking script refuses them from now on)."""
        pipe = self.redis.pipeline(transaction=True)
        for day in days:
            pipe.set(self.keys.suspended(market_id, day.isoformat()), reason)
        await pipe.execute()

    async def lift_suspension(self, market_id: str, days: list[date]) -> None:
        """Clear suspended dates."""
        if days:
            await self.redis.delete(*[self.keys.suspended(market_id, d.isoformat()) for d in days])

    @staticmethod
    def _booking(raw: dict[bytes, bytes]) -> Booking:
        r = {k.decode(): v.decode() for k, v in raw.items()}
        return Booking(
            id=r["id"],
            vendor_id=r["vendor"],
            market_id=r["market"],
            stall_id=r["stall"],
            date=date.fromisoformat(r["date"]),
            window_id=r["window"],
            category=Category(r["category"]),
            priority=r.get("priority") == "1",
            state=BookingState(r["state"]),
            starts_at=datetime.fromtimestamp(float(r["start_ts"]), tz=UTC),
            ends_at=datetime.fromtimestamp(float(r["end_ts"]), tz=UTC),
            created_at=datetime.fromtimestamp(float(r["created_ts"]), tz=UTC),
            checked_in_at=_ts(raw.get(b"checked_in_ts")),
            cancelled_at=_ts(raw.get(b"cancelled_ts")),
            late_cancellation=r.get("late") == "1",
            reason=r.get("reason"),
        )


def as_json(value: Any) -> str:
    """Compact JSON for script arguments."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
