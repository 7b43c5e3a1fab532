"""Where the counters live: Redis in service, dicts in unit tests."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from reporting.domain.stats import CountedEvent, EventStats, Scope, scopes_of
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings

#: How long an event id is remembered as counted (as long as the consumer's dedup marks).
SEEN_TTL_SECONDS = 7 * 24 * 3600
#: How long a market's district is taken from memory before Redis is asked again (another
#: replica may have read a catalogue change that moved it).
DISTRICT_CACHE_SECONDS = 60.0

# Counts each event once: its "seen" mark and its increments happen together or not at all, so a
# batch applied again after a crash counts nothing twice. KEYS: per event, its seen mark then its
# scopes' counters. ARGV: seen ttl, then per event its type and how many counters follow its
# mark. Returns how many were counted (not seen before).
_COUNT_MANY = """
local k, counted = 1, 0
for i = 2, #ARGV, 2 do
  local n = tonumber(ARGV[i + 1])
  if redis.call('SET', KEYS[k], '1', 'NX', 'EX', ARGV[1]) then
    for j = k + 1, k + n do redis.call('HINCRBY', KEYS[j], ARGV[i], 1) end
    counted = counted + 1
  end
  k = k + n + 1
end
return counted
"""


class StatsStore(Protocol):
    """Counters by event type per scope, and what district each market is in."""

    async def count(self, event: CountedEvent) -> bool:
        """Add the event to its scopes' counters; False when it was counted before."""
        ...

    async def count_many(self, events: Sequence[CountedEvent]) -> int:
        """Count each event as :meth:`count` does, in order; how many were not counted before."""
        ...

    async def stats(self, scope: Scope) -> EventStats:
        """The counts of one scope."""
        ...

    async def remember_district(self, market_id: str, district: str) -> None:
        """Remember the market's district, to count its events without one there too."""
        ...

    async def district_of(self, market_id: str) -> str | None:
        """The market's district, if a catalogue change told it."""
        ...

    async def districts_of(self, market_ids: Iterable[str]) -> dict[str, str]:
        """The district of each of the markets a catalogue change told of."""
        ...


class RedisStatsStore:
    """Hashes of counts by event type.

    Aggregates span markets, so unlike per-market state they share one hash tag
    (``rep:{stats}:...``): that keeps a count and its "seen" mark in one cluster slot, where a
    script can update them atomically. Each scope is one small hash.
    """

    def __init__(self, redis: RedisClient, settings: CommonSettings):
        self.redis = redis
        self.settings = settings
        self._count_many = redis.register_script(_COUNT_MANY)
        #: market -> (district, until when it is taken from memory, monotonic seconds)
        self._districts: dict[str, tuple[str, float]] = {}

    def _key(self, *parts: str) -> str:
        return self.settings.key("rep", "{stats}", *parts)

    def _scope_key(self, scope: Scope) -> str:
        return self._key("counts", scope.kind.value, scope.id) if scope.id else self._key("counts")

    async def count(self, event: CountedEvent) -> bool:
        """Add the event to its scopes' counters; False when it was counted before."""
        return await self.count_many([event]) == 1

    async def count_many(self, events: Sequence[CountedEvent]) -> int:
        """Count each event as :meth:`count` does, in order, in one script call (one slot)."""
        if not events:
            return 0
        keys: list[str] = []
        args: list[str | int] = [SEEN_TTL_SECONDS]
        for event in events:
            scopes = [self._scope_key(s) for s in scopes_of(event)]
            keys.append(self._key("seen", event.event_id))
            keys += scopes
            args += [event.event_type, len(scopes)]
        return int(await self._count_many(keys=keys, args=args))

    async def stats(self, scope: Scope) -> EventStats:
        """The counts of one scope."""
        raw = await self.redis.hgetall(self._scope_key(scope))
        return EventStats({k.decode(): int(v) for k, v in raw.items()})

    async def remember_district(self, market_id: str, district: str) -> None:
        """Remember the market's district, to count its events without one there too."""
        await self.redis.hset(self._key("market_districts"), market_id, district)
        self._districts[market_id] = (district, time.monotonic() + DISTRICT_CACHE_SECONDS)

    async def district_of(self, market_id: str) -> str | None:
        """The market's district, if a catalogue change told it (from memory for a minute)."""
        return (await self.districts_of([market_id])).get(market_id)

    async def districts_of(self, market_ids: Iterable[str]) -> dict[str, str]:
        """The district of each of the markets a catalogue change told of: from memory for a
        minute, the others in one round trip."""
        now = time.monotonic()
        found: dict[str, str] = {}
        missing: list[str] = []
        for market_id in dict.fromkeys(market_ids):
            cached = self._districts.get(market_id)
            if cached is not None and cached[1] > now:
                found[market_id] = cached[0]
            else:
                missing.append(market_id)
        if missing:
            raw = await self.redis.hmget(self._key("market_districts"), missing)
            for market_id, value in zip(missing, raw, strict=True):
                if value is not None:
                    district = found[market_id] = bytes(value).decode()
                    self._districts[market_id] = (district, now + DISTRICT_CACHE_SECONDS)
        return found


class InMemoryStatsStore:
    """Dicts instead of Redis, for unit tests."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.counts: dict[Scope, dict[str, int]] = {}
        self.districts: dict[str, str] = {}

    async def count(self, event: CountedEvent) -> bool:
        """Add the event to its scopes' counters; False when it was counted before."""
        if event.event_id in self.seen:
            return False
        self.seen.add(event.event_id)
        for scope in scopes_of(event):
            counts = self.counts.setdefault(scope, {})
            counts[event.event_type] = counts.get(event.event_type, 0) + 1
        return True

    async def count_many(self, events: Sequence[CountedEvent]) -> int:
        """Count each event, in order; how many were not counted before."""
        return sum([await self.count(event) for event in events])

    async def stats(self, scope: Scope) -> EventStats:
        """The counts of one scope."""
        return EventStats(dict(self.counts.get(scope, {})))

    async def remember_district(self, market_id: str, district: str) -> None:
        """Remember the market's district."""
        self.districts[market_id] = district

    async def district_of(self, market_id: str) -> str | None:
        """The market's district, if a catalogue change told it."""
        return self.districts.get(market_id)

    async def districts_of(self, market_ids: Iterable[str]) -> dict[str, str]:
        """The district of each of the markets a catalogue change told of."""
        return {m: self.districts[m] for m in market_ids if m in self.districts}
