"""Where the "who should be where" projection lives: Redis in service, dicts in unit tests."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Protocol

from redis.asyncio import Redis

from inspection.domain.expected import (
    ExpectedBooking,
    MarketFacts,
    Slot,
    StallFacts,
    keep_until,
)
from stallkit.clock import Clock
from stallkit.settings import CommonSettings

MIN_TTL_SECONDS = 3600


class ExpectationStore(Protocol):
    """The projection's reads and writes, grouped by market."""

    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None:
        """The booking expected at ``slot``, if any."""
        ...

    async def put_expected(self, booking: ExpectedBooking) -> None:
        """Expect ``booking`` at its slot, replacing what was there."""
        ...

    async def clear_expected(self, market_id: str, slot: Slot) -> None:
        """Expect nobody at ``slot``."""
        ...

    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None:
        """Remember that a booking ended, so a replay of its creation cannot revive it."""
        ...

    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool:
        """Whether the booking's end was seen."""
        ...

    async def put_stall(self, stall: StallFacts) -> None:
        """Store what the catalogue says about a stall."""
        ...

    async def get_stall(self, market_id: str, stall_id: str) -> StallFacts | None:
        """What the catalogue said about a stall, if anything."""
        ...

    async def put_market(self, market: MarketFacts) -> None:
        """Store what the catalogue says about a market."""
        ...

    async def get_market(self, market_id: str) -> MarketFacts | None:
        """What the catalogue said about a market, if anything."""
        ...


def booking_to_json(booking: ExpectedBooking) -> str:
    """Serialize an expected booking for storage."""
    return json.dumps(
        {
            "booking_id": booking.booking_id,
            "vendor_id": booking.vendor_id,
            "market_id": booking.market_id,
            "stall_id": booking.stall_id,
            "date": booking.date.isoformat(),
            "window_id": booking.window_id,
            "category": booking.category,
            "starts_at": booking.starts_at.isoformat(),
            "ends_at": booking.ends_at.isoformat(),
        }
    )


def booking_from_json(raw: str | bytes) -> ExpectedBooking:
    """Read back a stored expected booking."""
    data: dict[str, Any] = json.loads(raw)
    return ExpectedBooking(
        booking_id=data["booking_id"],
        vendor_id=data["vendor_id"],
        market_id=data["market_id"],
        stall_id=data["stall_id"],
        date=date.fromisoformat(data["date"]),
        window_id=data["window_id"],
        category=data["category"],
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]),
    )


class RedisExpectationStore:
    """Redis layout, every key tagged with its market so a cluster keeps a market together.

    - ``insp:{M}:expected:<date>`` hash ``<stall>|<window>`` → booking JSON (expires)
    - ``insp:{M}:ended:<date>`` set of booking ids that ended (expires with the date)
    - ``insp:{M}:stalls`` hash ``<stall>`` → stall JSON; ``insp:{M}:market`` → market JSON
    """

    def __init__(self, redis: Redis, settings: CommonSettings, clock: Clock, retention_days: int):
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self.retention_days = retention_days

    def _key(self, market_id: str, *parts: str) -> str:
        return self.settings.key("insp", "{" + market_id + "}", *parts)

    @staticmethod
    def _field(slot: Slot) -> str:
        return f"{slot.stall_id}|{slot.window_id}"

    def _ttl(self, day: date) -> int:
        left = keep_until(day, self.retention_days) - self.clock.now()
        return max(MIN_TTL_SECONDS, int(left.total_seconds()))

    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None:
        """The booking expected at ``slot``, if any."""
        raw = await self.redis.hget(
            self._key(market_id, "expected", slot.date.isoformat()), self._field(slot)
        )
        return None if raw is None else booking_from_json(raw)

    async def put_expected(self, booking: ExpectedBooking) -> None:
        """Expect ``booking`` at its slot, replacing what was there."""
        key = self._key(booking.market_id, "expected", booking.date.isoformat())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, self._field(booking.slot), booking_to_json(booking))
            pipe.expire(key, self._ttl(booking.date))
            await pipe.execute()

    async def clear_expected(self, market_id: str, slot: Slot) -> None:
        """Expect nobody at ``slot``."""
        await self.redis.hdel(
            self._key(market_id, "expected", slot.date.isoformat()), self._field(slot)
        )

    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None:
        """Remember that a booking ended, so a replay of its creation cannot revive it."""
        key = self._key(market_id, "ended", day.isoformat())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, booking_id)
            pipe.expire(key, self._ttl(day))
            await pipe.execute()

    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool:
        """Whether the booking's end was seen."""
        key = self._key(market_id, "ended", day.isoformat())
        return bool(await self.redis.sismember(key, booking_id))

    async def put_stall(self, stall: StallFacts) -> None:
        """Store what the catalogue says about a stall."""
        value = json.dumps({"category": stall.category, "active": stall.active})
        await self.redis.hset(self._key(stall.market_id, "stalls"), stall.stall_id, value)

    async def get_stall(self, market_id: str, stall_id: str) -> StallFacts | None:
        """What the catalogue said about a stall, if anything."""
        raw = await self.redis.hget(self._key(market_id, "stalls"), stall_id)
        if raw is None:
            return None
        data = json.loads(raw)
        return StallFacts(stall_id, market_id, data["category"], data["active"])

    async def put_market(self, market: MarketFacts) -> None:
        """Store what the catalogue says about a market."""
        value = json.dumps({"district": market.district})
        await self.redis.set(self._key(market.market_id, "market"), value)

    async def get_market(self, market_id: str) -> MarketFacts | None:
        """What the catalogue said about a market, if anything."""
        raw = await self.redis.get(self._key(market_id, "market"))
        return None if raw is None else MarketFacts(market_id, json.loads(raw)["district"])


class InMemoryExpectationStore:
    """Dicts instead of Redis, for unit tests."""

    def __init__(self) -> None:
        self.expected: dict[tuple[str, Slot], ExpectedBooking] = {}
        self.ended: set[tuple[str, date, str]] = set()
        self.stalls: dict[tuple[str, str], StallFacts] = {}
        self.markets: dict[str, MarketFacts] = {}

    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None:
        """The booking expected at ``slot``, if any."""
        return self.expected.get((market_id, slot))

    async def put_expected(self, booking: ExpectedBooking) -> None:
        """Expect ``booking`` at its slot, replacing what was there."""
        self.expected[(booking.market_id, booking.slot)] = booking

    async def clear_expected(self, market_id: str, slot: Slot) -> None:
        """Expect nobody at ``slot``."""
        self.expected.pop((market_id, slot), None)

    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None:
        """Remember that a booking ended."""
        self.ended.add((market_id, day, booking_id))

    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool:
        """Whether the booking's end was seen."""
        return (market_id, day, booking_id) in self.ended

    async def put_stall(self, stall: StallFacts) -> None:
        """Store what the catalogue says about a stall."""
        self.stalls[(stall.market_id, stall.stall_id)] = stall

    async def get_stall(self, market_id: str, stall_id: str) -> StallFacts | None:
        """What the catalogue said about a stall, if anything."""
        return self.stalls.get((market_id, stall_id))

    async def put_market(self, market: MarketFacts) -> None:
        """Store what the catalogue says about a market."""
        self.markets[market.market_id] = market

    async def get_market(self, market_id: str) -> MarketFacts | None:
        """What the catalogue said about a market, if anything."""
        return self.markets.get(market_id)
