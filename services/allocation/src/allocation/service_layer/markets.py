"""Market-level use cases: availability, suspensions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from allocation.adapters.catalogue_store import CatalogueStore
from allocation.adapters.ledger import Ledger
from allocation.domain.errors import rejected
from allocation.domain.rules import Policy, held_stall_count, occurrence, priority_hold_ends_at
from allocation.service_layer.bookings import BookingService
from contracts.catalogue import Market
from contracts.envelope import Envelope
from contracts.events import MarketSuspensionDeclared
from stallkit.clock import Clock
from stallkit.outbox import outbox_fields


@dataclass(frozen=True)
class WindowAvailability:
    """Availability of one window occurrence."""

    window_id: str
    starts_at: datetime
    ends_at: datetime
    total: int
    booked: int
    free: int
    held_for_priority: int
    free_stalls: list[str]
    suspended_reason: str | None


@dataclass(frozen=True)
class SuspensionResult:
    """What a suspension did."""

    suspension_id: str
    first_date: date
    last_date: date
    reason: str
    cancelled_bookings: int


class MarketService:
    """Reads availability and applies suspensions."""

    def __init__(
        self,
        catalogue: CatalogueStore,
        ledger: Ledger,
        bookings: BookingService,
        clock: Clock,
        policy: Policy,
        *,
        source: str,
        max_suspension_days: int,
    ):
        self.catalogue = catalogue
        self.ledger = ledger
        self.bookings = bookings
        self.clock = clock
        self.policy = policy
        self.source = source
        self.max_suspension_days = max_suspension_days

    async def market(self, market_id: str) -> Market:
        """A market, or ``market_not_found``."""
        market = self.catalogue.view.markets.get(market_id)
        if market is None:
            market = (await self.catalogue.refresh(force=True)).markets.get(market_id)
        if market is None:
            raise rejected("market_not_found")
        return market

    async def availability(self, market_id: str, day: date) -> list[WindowAvailability]:
        """Per window running on ``day``: free, booked and held-for-priority stalls."""
        market = await self.market(market_id)
        stalls = [s.id for s in self.catalogue.view.market_stalls(market_id) if s.active]
        now = self.clock.now()
        suspended = await self.ledger.redis.get(
            self.ledger.keys.suspended(market_id, day.isoformat())
        )
        result = []
        for window in market.windows:
            if day.isoweekday() not in window.days:
                continue
            occ = occurrence(market, window.id, day)
            claimed = await self.ledger.claimed_stalls(stalls, day, window.id)
            _, standard = await self.ledger.window_counts(market_id, day, window.id)
            # Nothing can be booked on a suspended date.
            free_ids = [] if suspended else [s for s in stalls if s not in claimed]
            held = 0
            if free_ids and now < priority_hold_ends_at(self.policy, day):
                quota = held_stall_count(self.policy, len(stalls))
                free_for_standard = min(len(free_ids), max(0, len(stalls) - quota - standard))
                held = len(free_ids) - free_for_standard
            result.append(
                WindowAvailability(
                    window_id=window.id,
                    starts_at=occ.starts_at,
                    ends_at=occ.ends_at,
                    total=len(stalls),
                    booked=len(claimed),
                    free=len(free_ids),
                    held_for_priority=held,
                    free_stalls=free_ids,
                    suspended_reason=suspended.decode() if suspended else None,
                )
            )
        return result

    async def suspend(
        self,
        market_id: str,
        first: date,
        last: date,
        reason: str,
        suspension_id: str,
        *,
        announce: bool = True,
    ) -> SuspensionResult:
        """Suspend a market for a date range: refuse new bookings, cancel existing ones."""
        market = await self.market(market_id)
        if last < first:
            raise rejected("suspension_too_long", "last_date is before first_date")
        span = (last - first).days + 1
        if span > self.max_suspension_days:
            raise rejected("suspension_too_long", f"at most {self.max_suspension_days} days")
        days = [first + timedelta(days=i) for i in range(span)]
        await self.ledger.suspend_dates(market_id, days, reason)
        record = {
            "suspension_id": suspension_id,
            "first_date": first.isoformat(),
            "last_date": last.isoformat(),
            "reason": reason,
        }
        redis = self.catalogue.redis
        pipe = redis.pipeline(transaction=True)
        pipe.hset(self.catalogue.keys.suspensions(market_id), suspension_id, json.dumps(record))
        if announce:
            event = MarketSuspensionDeclared(
                market_id=market_id,
                suspension_id=suspension_id,
                first_date=first,
                last_date=last,
                reason=reason,
            )
            envelope = Envelope.wrap(event, source=self.source, time=self.clock.now())
            pipe.xadd(self.catalogue.keys.outbox(), outbox_fields(event, envelope))
        await pipe.execute()
        cancelled = await self.bookings.suspend_bookings(market, days, reason)
        return SuspensionResult(suspension_id, first, last, reason, cancelled)

    async def resume(self, market_id: str) -> int:
        """Lift the market's suspensions from today on; returns the dates reopened."""
        today = self.clock.today()
        reopened: list[date] = []
        for record in await self.catalogue.suspensions(market_id):
            first = max(date.fromisoformat(record["first_date"]), today)
            last = date.fromisoformat(record["last_date"])
            reopened += [first + timedelta(days=i) for i in range((last - first).days + 1)]
        await self.ledger.lift_suspension(market_id, reopened)
        return len(reopened)
