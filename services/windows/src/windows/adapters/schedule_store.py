"""Where the schedule projection lives: Redis in service, a dict in unit tests."""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Any, Protocol

from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings
from windows.domain.schedule import MarketSchedule, WindowSpec


class ScheduleStore(Protocol):
    """Reads and writes one schedule per market."""

    async def get(self, market_id: str) -> MarketSchedule | None:
        """The market's schedule, or None when the market is unknown."""
        ...

    async def put(self, schedule: MarketSchedule) -> None:
        """Store the market's schedule, replacing what was there."""
        ...

    async def market_ids(self) -> list[str]:
        """Every market with a schedule, sorted."""
        ...

    async def park_booking(self, market_id: str, booking_id: str, payload: str) -> None:
        """Keep a booking read before its market, until the market arrives."""
        ...

    async def parked_bookings(self, market_id: str) -> dict[str, str]:
        """The market's parked bookings: booking id -> payload."""
        ...

    async def unpark_booking(self, market_id: str, booking_id: str) -> None:
        """Forget a parked booking once it has been taken care of."""
        ...


def schedule_to_json(schedule: MarketSchedule) -> str:
    """Serialize a schedule for storage."""
    return json.dumps(
        {
            "market_id": schedule.market_id,
            "district": schedule.district,
            "as_of": schedule.as_of.isoformat(),
            "windows": [
                {
                    "id": w.id,
                    "name_zh": w.name_zh,
                    "name_en": w.name_en,
                    "days": list(w.days),
                    "start": w.start.isoformat(),
                    "end": w.end.isoformat(),
                }
                for w in schedule.windows
            ],
        },
        ensure_ascii=False,
    )


def schedule_from_json(raw: str | bytes) -> MarketSchedule:
    """Read back a stored schedule."""
    data: dict[str, Any] = json.loads(raw)
    return MarketSchedule(
        market_id=data["market_id"],
        district=data["district"],
        as_of=datetime.fromisoformat(data["as_of"]),
        windows=tuple(
            WindowSpec(
                id=w["id"],
                name_zh=w["name_zh"],
                name_en=w["name_en"],
                days=tuple(w["days"]),
                start=time.fromisoformat(w["start"]),
                end=time.fromisoformat(w["end"]),
            )
            for w in data["windows"]
        ),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: How long a booking read before its market waits for it (a market that never comes).
PARKED_TTL_SECONDS = 7 * 86400


class RedisScheduleStore:
    """One JSON string per market under ``win:{market}:schedule`` (hash tag: the market);
    bookings read before their market in a hash ``win:{market}:parked``."""

    def __init__(self, redis: RedisClient, settings: CommonSettings):
        self.redis = redis
        self.settings = settings

    def _key(self, market_id: str) -> str:
        return self.settings.key("win", "{" + market_id + "}", "schedule")

    async def get(self, market_id: str) -> MarketSchedule | None:
        """The market's schedule, or None when the market is unknown."""
        raw = await self.redis.get(self._key(market_id))
        return None if raw is None else schedule_from_json(raw)

    async def put(self, schedule: MarketSchedule) -> None:
        """Store the market's schedule, replacing what was there."""
        await self.redis.set(self._key(schedule.market_id), schedule_to_json(schedule))
        await self.redis.sadd(self.settings.key("win", "markets"), schedule.market_id)

    def _parked(self, market_id: str) -> str:
        return self.settings.key("win", "{" + market_id + "}", "parked")

    async def park_booking(self, market_id: str, booking_id: str, payload: str) -> None:
        """Keep a booking read before its market, for :data:`PARKED_TTL_SECONDS` at most."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._parked(market_id), booking_id, payload)
            pipe.expire(self._parked(market_id), PARKED_TTL_SECONDS)
            await pipe.execute()

    async def parked_bookings(self, market_id: str) -> dict[str, str]:
        """The market's parked bookings: booking id -> payload."""
        found = await self.redis.hgetall(self._parked(market_id))
        return {_text(k): _text(v) for k, v in found.items()}

    async def unpark_booking(self, market_id: str, booking_id: str) -> None:
        """Forget a parked booking once it has been taken care of."""
        await self.redis.hdel(self._parked(market_id), booking_id)

    async def market_ids(self) -> list[str]:
        """Every market with a schedule, sorted.

        A store written before the set of markets existed has only the schedules: the first
        call finds them by their keys and fills the set.
        """
        markets = self.settings.key("win", "markets")
        found = {_text(m) for m in await self.redis.smembers(markets)}
        if not found:
            pattern = self._key("*")
            async for key in self.redis.scan_iter(match=pattern, count=500):
                text = _text(key)
                found.add(text[text.index("{") + 1 : text.rindex("}")])
            if found:
                await self.redis.sadd(markets, *found)
        return sorted(found)


class InMemoryScheduleStore:
    """A dict of schedules, for unit tests and demos without Redis."""

    def __init__(self) -> None:
        self.schedules: dict[str, MarketSchedule] = {}
        self.parked: dict[str, dict[str, str]] = {}

    async def get(self, market_id: str) -> MarketSchedule | None:
        """The market's schedule, or None when the market is unknown."""
        return self.schedules.get(market_id)

    async def put(self, schedule: MarketSchedule) -> None:
        """Store the market's schedule, replacing what was there."""
        self.schedules[schedule.market_id] = schedule

    async def market_ids(self) -> list[str]:
        """Every market with a schedule, sorted."""
        return sorted(self.schedules)

    async def park_booking(self, market_id: str, booking_id: str, payload: str) -> None:
        """Keep a booking read before its market."""
        self.parked.setdefault(market_id, {})[booking_id] = payload

    async def parked_bookings(self, market_id: str) -> dict[str, str]:
        """The market's parked bookings: booking id -> payload."""
        return dict(self.parked.get(market_id, {}))

    async def unpark_booking(self, market_id: str, booking_id: str) -> None:
        """Forget a parked booking."""
        self.parked.get(market_id, {}).pop(booking_id, None)
