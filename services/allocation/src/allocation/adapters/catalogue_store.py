"""Markets, stalls, schedules and stall-code versions in Redis, with an in-process cache.

Every change is written in one MULTI/EXEC with its catalogue event on the outbox and bumps the
catalogue version; booking decisions re-check the parts they rely on inside their script.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from allocation.adapters.keys import Keys
from contracts.catalogue import Catalogue, Market, Stall
from contracts.envelope import Envelope, Event
from contracts.events import MarketChanged, ScheduleChanged, StallChanged
from stallkit.outbox import outbox_fields
from stallkit.redis_client import RedisClient


def window_signature(market: Market, window_id: str) -> str:
    """The string a booking decision compares with the stored window (see book.lua)."""
    window = market.window(window_id)
    if window is None:
        return ""
    days = "".join(str(d) for d in sorted(window.days))
    return f"{window.start_minute}-{window.end_minute}-{days}"


@dataclass
class CatalogueView:
    """A snapshot of the catalogue held in memory for reads and booking preparation."""

    version: int = -1
    markets: dict[str, Market] = field(default_factory=dict)
    stalls: dict[str, Stall] = field(default_factory=dict)
    code_versions: dict[str, int] = field(default_factory=dict)

    _by_market: dict[str, list[Stall]] | None = field(default=None, repr=False)
    _active: dict[str, int] = field(default_factory=dict, repr=False)

    def market_stalls(self, market_id: str) -> list[Stall]:
        """A market's stalls in id order (indexed once per snapshot)."""
        if self._by_market is None:
            index: dict[str, list[Stall]] = {}
            for stall in sorted(self.stalls.values(), key=lambda s: s.id):
                index.setdefault(stall.market_id, []).append(stall)
            self._by_market = index
            self._active = {m: sum(1 for s in ss if s.active) for m, ss in index.items()}
        return self._by_market.get(market_id, [])

    def active_stall_count(self, market_id: str) -> int:
        """How many of the market's stalls can be booked."""
        self.market_stalls(market_id)
        return self._active.get(market_id, 0)


@dataclass(frozen=True)
class ImportResult:
    """What a catalogue import changed."""

    markets: int
    stalls: int
    changed_markets: int
    changed_stalls: int


class CatalogueStore:
    """Reads and writes the catalogue; keeps a cached :class:`CatalogueView`."""

    def __init__(self, redis: RedisClient, keys: Keys, *, source: str, now: Callable[[], datetime]):
        self.redis = redis
        self.keys = keys
        self.source = source
        self.now = now
        self.view = CatalogueView()

    def _outbox(self, pipe: Pipeline, event: Event) -> None:
        envelope = Envelope.wrap(event, source=self.source, time=self.now())
        pipe.xadd(self.keys.outbox(), outbox_fields(event, envelope))

    async def refresh(self, force: bool = False) -> CatalogueView:
        """Reload the cache if the stored catalogue version moved."""
        version = int(await self.redis.get(self.keys.catalogue_version()) or 0)
        if not force and version == self.view.version:
            return self.view
        ids = sorted(m.decode() for m in await self.redis.smembers(self.keys.markets()))
        view = CatalogueView(version=version)
        if ids:
            raw_markets = await self.redis.mget([self.keys.market(i) for i in ids])
            for raw in raw_markets:
                if raw:
                    market = Market.model_validate_json(raw)
                    view.markets[market.id] = market
            pipe = self.redis.pipeline(transaction=False)
            for market_id in ids:
                pipe.smembers(self.keys.market_stalls(market_id))
            stall_ids = sorted(s.decode() for group in await pipe.execute() for s in group)
            pipe = self.redis.pipeline(transaction=False)
            for stall_id in stall_ids:
                pipe.hmget(self.keys.stall(stall_id), ["json", "code_version"])
            for stall_id, (raw, code_version) in zip(stall_ids, await pipe.execute(), strict=True):
                if raw:
                    view.stalls[stall_id] = Stall.model_validate_json(raw)
                    view.code_versions[stall_id] = int(code_version or 0)
        self.view = view
        return view

    def _write_market(self, pipe: Pipeline, market: Market, previous: Market | None) -> None:
        pipe.set(self.keys.market(market.id), market.model_dump_json())
        pipe.sadd(self.keys.markets(), market.id)
        for window in market.windows:
            pipe.hset(
                self.keys.window(market.id, window.id),
                "sig",
                window_signature(market, window.id),
            )
        if previous is not None:
            for window in previous.windows:
                if market.window(window.id) is None:
                    pipe.delete(self.keys.window(market.id, window.id))

    def _write_stall(self, pipe: Pipeline, stall: Stall) -> None:
        pipe.hset(
            self.keys.stall(stall.id),
            mapping={
                "market": stall.market_id,
                "category": stall.category.value,
                "active": "1" if stall.active else "0",
                "json": stall.model_dump_json(),
            },
        )
        pipe.hsetnx(self.keys.stall(stall.id), "code_version", "1")
        pipe.sadd(self.keys.market_stalls(stall.market_id), stall.id)

    async def import_catalogue(self, catalogue: Catalogue) -> ImportResult:
        """Create or update markets and stalls; only real changes produce events."""
        view = await self.refresh(force=True)
        pipe = self.redis.pipeline(transaction=True)
        changed_markets = changed_stalls = 0
        for market in catalogue.markets:
            previous = view.markets.get(market.id)
            if previous == market:
                continue
            self._write_market(pipe, market, previous)
            self._outbox(pipe, MarketChanged(market_id=market.id, market=market))
            changed_markets += 1
        for stall in catalogue.stalls:
            if view.stalls.get(stall.id) == stall:
                continue
            self._write_stall(pipe, stall)
            self._outbox(pipe, StallChanged(market_id=stall.market_id, stall=stall))
            changed_stalls += 1
        if changed_markets or changed_stalls:
            pipe.incr(self.keys.catalogue_version())
            await pipe.execute()
        await self.refresh()
        return ImportResult(
            markets=len(catalogue.markets),
            stalls=len(catalogue.stalls),
            changed_markets=changed_markets,
            changed_stalls=changed_stalls,
        )

    async def put_market(self, market: Market) -> bool:
        """Create or replace one market; returns whether it was new."""
        view = await self.refresh(force=True)
        previous = view.markets.get(market.id)
        if previous == market:
            return False
        pipe = self.redis.pipeline(transaction=True)
        self._write_market(pipe, market, previous)
        self._outbox(pipe, MarketChanged(market_id=market.id, market=market))
        if previous is not None and previous.windows != market.windows:
            self._outbox(pipe, ScheduleChanged(market_id=market.id, windows=market.windows))
        pipe.incr(self.keys.catalogue_version())
        await pipe.execute()
        await self.refresh()
        return previous is None

    async def put_stall(self, stall: Stall) -> bool:
        """Create or replace one stall; returns whether it was new."""
        view = await self.refresh(force=True)
        previous = view.stalls.get(stall.id)
        if previous == stall:
            return False
        pipe = self.redis.pipeline(transaction=True)
        self._write_stall(pipe, stall)
        self._outbox(pipe, StallChanged(market_id=stall.market_id, stall=stall))
        pipe.incr(self.keys.catalogue_version())
        await pipe.execute()
        await self.refresh()
        return previous is None

    async def change_code_version(
        self, stall_id: str, event: Callable[[int], Event], bump: int
    ) -> int:
        """Set a stall's code version (+1 to issue, negative to revoke) with its event."""
        key = self.keys.stall(stall_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current = int(await pipe.hget(key, "code_version") or 0)
                    new = abs(current) + 1 if bump > 0 else -abs(current)
                    pipe.multi()
                    pipe.hset(key, "code_version", str(new))
                    self._outbox(pipe, event(abs(new) if bump > 0 else abs(current)))
                    pipe.incr(self.keys.catalogue_version())
                    await pipe.execute()
                    break
                except WatchError:  # changed under us: read again
                    continue
        await self.refresh()
        return new
