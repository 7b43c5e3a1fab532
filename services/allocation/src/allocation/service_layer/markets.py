"""Market-level use cases: availability, declaring and lifting suspensions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from allocation.adapters.catalogue_store import CatalogueStore
from allocation.adapters.ledger import Ledger
from allocation.adapters.suspensions import OutboxEntry, Suspension, SuspensionStore, dates_between
from allocation.domain.errors import rejected
from allocation.domain.rules import Policy, held_stall_count, occurrence, priority_hold_ends_at
from allocation.service_layer.bookings import BookingService, new_id
from contracts.catalogue import Market
from contracts.envelope import Envelope, Event
from contracts.events import MarketSuspensionDeclared, MarketSuspensionLifted
from stallkit.clock import Clock

#: Availability is shown from yesterday to this many days ahead (bookings open at most D-7).
AVAILABILITY_DAYS_AHEAD = 60
#: A suspension may start at most this many days ahead.
SUSPENSION_LEAD_DAYS = 366
#: Longest suspension id accepted from a path or an event (ids are looked up, never stored).
MAX_SUSPENSION_ID_LENGTH = 64


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
class DeclareSuspension:
    """Command: suspend a market for a date range."""

    market_id: str
    first_date: date
    last_date: date
    reason: str
    #: ``admin`` (announced on the catalogue topic) or ``windows`` (not re-announced).
    origin: str = "admin"
    #: The suspension's id when the caller names it (an event); a new one otherwise.
    suspension_id: str | None = None
    idempotency_key: str | None = None

    def body_hash(self) -> str:
        """What makes two requests with one Idempotency-Key the same request."""
        text = f"{self.first_date.isoformat()}|{self.last_date.isoformat()}|{self.reason}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SuspensionResult:
    """What declaring a suspension did."""

    suspension: Suspension
    cancelled_bookings: int
    #: An earlier request with the same Idempotency-Key declared it.
    replayed: bool


@dataclass(frozen=True)
class LiftResult:
    """What lifting a suspension did."""

    suspension: Suspension
    #: Dates that are open again (dates another suspension covers stay suspended).
    reopened_dates: int
    #: It had been lifted before; nothing changed now.
    already_lifted: bool


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
        suspensions: SuspensionStore | None = None,
        idempotency_ttl_seconds: int | None = None,
    ):
        self.catalogue = catalogue
        self.ledger = ledger
        self.bookings = bookings
        self.clock = clock
        self.policy = policy
        self.source = source
        self.max_suspension_days = max_suspension_days
        self.suspensions = suspensions or SuspensionStore(catalogue.redis, catalogue.keys)
        self.idempotency_ttl_seconds = idempotency_ttl_seconds or bookings.idempotency_ttl_seconds

    async def market(self, market_id: str) -> Market:
        """A market, or ``market_not_found`` (an unknown id costs one version read)."""
        market = self.catalogue.view.markets.get(market_id)
        if market is None:
            market = (await self.catalogue.refresh()).markets.get(market_id)
        if market is None:
            raise rejected("market_not_found")
        return market

    async def availability(self, market_id: str, day: date) -> list[WindowAvailability]:
        """Per window running on ``day``: free, booked and held-for-priority stalls."""
        market = await self.market(market_id)
        today = self.clock.today()
        earliest, latest = today - timedelta(days=1), today + timedelta(AVAILABILITY_DAYS_AHEAD)
        if not earliest <= day <= latest:
            raise rejected(
                "date_out_of_range",
                f"availability is shown from {earliest} to {latest}",
                earliest=earliest.isoformat(),
                latest=latest.isoformat(),
            )
        stalls = [s.id for s in self.catalogue.view.market_stalls(market_id) if s.active]
        now = self.clock.now()
        suspended = await self.suspensions.reason_on(market_id, day)
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
                    suspended_reason=suspended,
                )
            )
        return result

    def _check_range(self, first: date, last: date, *, allow_past: bool) -> None:
        """Refuse a range that is reversed, in the past, too far ahead or too long."""
        if last < first:
            raise rejected("invalid_date_range", "last_date is before first_date")
        today = self.clock.today()
        if first < today and not allow_past:
            raise rejected("date_in_past", f"first_date is before today ({today})")
        latest_start = today + timedelta(days=SUSPENSION_LEAD_DAYS)
        if first > latest_start:
            raise rejected(
                "date_out_of_range",
                f"a suspension starts at the latest on {latest_start}",
                earliest=today.isoformat(),
                latest=latest_start.isoformat(),
            )
        if (last - first).days + 1 > self.max_suspension_days:
            raise rejected(
                "suspension_too_long",
                f"at most {self.max_suspension_days} days",
                max_days=self.max_suspension_days,
            )

    def _outbox(self, event: Event) -> OutboxEntry:
        envelope = Envelope.wrap(event, source=self.source, time=self.clock.now())
        return OutboxEntry(
            event.topic, event.market_id, envelope.id, envelope.type, envelope.model_dump_json()
        )

    async def declare(self, command: DeclareSuspension) -> SuspensionResult:
        """Suspend a market for a date range: refuse new bookings, cancel existing ones.

        The record, the dates and (for admins) the ``catalogue.suspension.declared`` event are
        written in one script. Bookings are then cancelled one transition each; a retry (same
        Idempotency-Key, or same suspension id from an event) cancels what is left.
        """
        market = await self.market(command.market_id)
        body_hash = command.body_hash()
        if command.idempotency_key:
            prior = await self.suspensions.prior_request(market.id, command.idempotency_key)
            if prior is not None:  # a retry: answered even once first_date has passed
                if prior[0] != body_hash:
                    raise rejected("idempotency_key_reused")
                return await self._finish(market, prior[1], replayed=True)
        self._check_range(
            command.first_date, command.last_date, allow_past=command.origin != "admin"
        )
        suspension = Suspension(
            id=command.suspension_id or new_id("sp"),
            market_id=market.id,
            first_date=command.first_date,
            last_date=command.last_date,
            reason=command.reason,
            origin=command.origin,
            declared_at=self.clock.now(),
        )
        event = None
        if command.origin == "admin":
            event = self._outbox(
                MarketSuspensionDeclared(
                    market_id=market.id,
                    suspension_id=suspension.id,
                    first_date=suspension.first_date,
                    last_date=suspension.last_date,
                    reason=suspension.reason,
                )
            )
        idempotency = None
        if command.idempotency_key:
            idempotency = (command.idempotency_key, body_hash, self.idempotency_ttl_seconds)
        outcome, suspension_id = await self.suspensions.declare(
            suspension, idempotency=idempotency, event=event
        )
        if outcome == "err":
            raise rejected(suspension_id)
        return await self._finish(market, suspension_id, replayed=outcome == "replay")

    async def _finish(
        self, market: Market, suspension_id: str, *, replayed: bool
    ) -> SuspensionResult:
        """Cancel the bookings a declared suspension still covers (none once it is lifted)."""
        suspension = await self.suspensions.get(market.id, suspension_id)
        if suspension is None:  # the Idempotency-Key outlived nothing else: cannot happen
            raise rejected("suspension_not_found")
        cancelled = 0
        if suspension.in_force:
            start = max(suspension.first_date, self.clock.today())
            days = await self.suspensions.suspended_days(
                market.id, dates_between(start, suspension.last_date)
            )
            cancelled = await self.bookings.suspend_bookings(market, days, suspension.reason)
        return SuspensionResult(suspension, cancelled, replayed)

    async def suspensions_of(self, market_id: str) -> list[Suspension]:
        """Every suspension of the market, lifted ones included."""
        market = await self.market(market_id)
        return await self.suspensions.all(market.id)

    async def suspension(self, market_id: str, suspension_id: str) -> Suspension:
        """One suspension of the market, or ``suspension_not_found``."""
        market = await self.market(market_id)
        found = None
        if len(suspension_id) <= MAX_SUSPENSION_ID_LENGTH:
            found = await self.suspensions.get(market.id, suspension_id)
        if found is None:
            raise rejected("suspension_not_found")
        return found

    async def lift(self, market_id: str, suspension_id: str, *, announce: bool) -> LiftResult:
        """Reopen one suspension's dates from today on; other suspensions' dates stay shut.

        With ``announce`` the ``catalogue.suspension.lifted`` event is written with it. Lifting
        a lifted suspension changes nothing and says so.
        """
        suspension = await self.suspension(market_id, suspension_id)
        today = self.clock.today()
        reopened_from = max(suspension.first_date, today)
        event = None
        if announce:
            event = self._outbox(
                MarketSuspensionLifted(
                    market_id=suspension.market_id,
                    suspension_id=suspension.id,
                    first_date=suspension.first_date,
                    last_date=suspension.last_date,
                    reopened_from=reopened_from,
                )
            )
        outcome, stored = await self.suspensions.lift(
            suspension, reopened_from=reopened_from, lifted_at=self.clock.now(), event=event
        )
        if stored is None:
            raise rejected("suspension_not_found")
        if outcome == "lifted":
            return LiftResult(stored, 0, already_lifted=True)
        days = dates_between(reopened_from, stored.last_date)
        still = await self.suspensions.suspended_days(stored.market_id, days)
        return LiftResult(stored, len(days) - len(still), already_lifted=False)

    async def lift_all(self, market_id: str) -> int:
        """Lift every suspension of the market in force (a ``market.resumed`` without an id)."""
        lifted = 0
        for suspension in await self.suspensions_of(market_id):
            if suspension.in_force:
                await self.lift(market_id, suspension.id, announce=False)
                lifted += 1
        return lifted
