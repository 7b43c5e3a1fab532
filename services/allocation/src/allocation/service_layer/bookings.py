"""Booking use cases: book, cancel, check in, no-shows, market suspensions."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from allocation.adapters.catalogue_store import CatalogueStore, window_signature
from allocation.adapters.ledger import Decision, Ledger, OutboxEvent
from allocation.domain import stall_codes
from allocation.domain.errors import IllegalTransition, rejected
from allocation.domain.model import (
    ACTIVE_STATES,
    TRANSITIONS,
    Booking,
    BookingAction,
    BookingState,
    next_state,
)
from allocation.domain.rules import (
    Policy,
    booking_opens_at,
    cancellation_is_late,
    check_in_window,
    held_stall_count,
    occurrence,
    priority_hold_ends_at,
)
from contracts.catalogue import Market, Stall
from contracts.envelope import Envelope, Event
from contracts.events import (
    BookingCancelled,
    BookingCheckedIn,
    BookingCreated,
    BookingNoShow,
    BookingSuspendedByMarket,
    StallReleased,
)
from stallkit.clock import Clock


@dataclass(frozen=True)
class BookStall:
    """Command: book a stall for a window on a date."""

    vendor_id: str
    stall_id: str
    date: date
    window_id: str
    idempotency_key: str

    def body_hash(self) -> str:
        """What makes two requests with one Idempotency-Key the same request."""
        text = f"{self.stall_id}|{self.date.isoformat()}|{self.window_id}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _about(booking: Booking) -> dict[str, Any]:
    """The fields every booking lifecycle event repeats."""
    return {
        "market_id": booking.market_id,
        "booking_id": booking.id,
        "vendor_id": booking.vendor_id,
        "stall_id": booking.stall_id,
        "date": booking.date,
        "window_id": booking.window_id,
    }


def new_id(prefix: str) -> str:
    """A random, URL-safe entity id."""
    return f"{prefix}_{secrets.token_hex(8)}"


class BookingService:
    """The booking rules applied through the ledger's atomic scripts."""

    def __init__(
        self,
        ledger: Ledger,
        catalogue: CatalogueStore,
        clock: Clock,
        policy: Policy,
        *,
        source: str,
        idempotency_ttl_seconds: int,
    ):
        self.ledger = ledger
        self.catalogue = catalogue
        self.clock = clock
        self.policy = policy
        self.source = source
        self.idempotency_ttl_seconds = idempotency_ttl_seconds

    def _outbox(self, event: Event, *, time: datetime) -> OutboxEvent:
        envelope = Envelope.wrap(event, source=self.source, time=time)
        return OutboxEvent(
            event.topic, event.market_id, envelope.id, envelope.type, envelope.model_dump_json()
        )

    async def _placement(self, stall_id: str) -> tuple[Stall, Market, int]:
        """The stall, its market and how many of the market's stalls are bookable."""
        view = self.catalogue.view
        if stall_id not in view.stalls:
            view = await self.catalogue.refresh(force=True)
        stall = view.stalls.get(stall_id)
        if stall is None:
            raise rejected("stall_not_found", f"no stall {stall_id}")
        market = view.markets[stall.market_id]
        return stall, market, view.active_stall_count(market.id)

    async def book(self, command: BookStall) -> tuple[Booking, bool]:
        """Book, or replay an earlier identical request; returns (booking, replayed)."""
        for attempt in range(2):
            decision, booking = await self._try_book(command)
            if decision.outcome == "err" and decision.value == "stale" and attempt == 0:
                await self.catalogue.refresh(force=True)
                continue
            break
        if decision.outcome == "replay":
            replayed = await self.ledger.get(decision.value)
            if replayed is None:
                raise rejected("booking_not_found")
            return replayed, True
        if decision.outcome == "err":
            raise self._rejection(decision)
        return booking, False

    @staticmethod
    def _rejection(decision: Decision) -> Exception:
        code = decision.value
        if code == "stale":
            return rejected("catalogue_conflict", "the catalogue changed; try again")
        if code == "vendor_suspended" and decision.extra:
            until = datetime.fromtimestamp(float(decision.extra[0]), tz=UTC)
            return rejected(code, suspended_until=until.isoformat())
        if code == "market_suspended" and decision.extra:
            return rejected(code, decision.extra[0], reason=decision.extra[0])
        if code == "overlapping_booking" and decision.extra:
            return rejected(code, conflicting_booking=decision.extra[0])
        return rejected(code)

    async def _try_book(self, command: BookStall) -> tuple[Decision, Booking]:
        stall, market, active_stalls = await self._placement(command.stall_id)
        occ = occurrence(market, command.window_id, command.date)
        now = self.clock.now()
        booking = Booking(
            id=new_id("bk"),
            vendor_id=command.vendor_id,
            market_id=market.id,
            stall_id=stall.id,
            date=command.date,
            window_id=command.window_id,
            category=stall.category,
            priority=False,
            state=BookingState.BOOKED,
            starts_at=occ.starts_at,
            ends_at=occ.ends_at,
            created_at=now,
        )
        event = BookingCreated(
            market_id=market.id,
            booking_id=booking.id,
            vendor_id=booking.vendor_id,
            stall_id=stall.id,
            date=booking.date,
            window_id=booking.window_id,
            category=stall.category,
            starts_at=occ.starts_at,
            ends_at=occ.ends_at,
            priority=False,
        )
        envelope = Envelope.wrap(event, source=self.source, time=now)
        day = command.date
        argv: list[str | int | float] = [
            now.timestamp(),
            command.vendor_id,
            stall.id,
            market.id,
            command.window_id,
            day.isoformat(),
            occ.starts_at.timestamp(),
            occ.ends_at.timestamp(),
            occ.iso_week,
            command.idempotency_key,
            command.body_hash(),
            booking.id,
            stall.category.value,
            window_signature(market, command.window_id),
            self.policy.weekly_cap,
            booking_opens_at(day, self.policy.priority_horizon_days).timestamp(),
            booking_opens_at(day, self.policy.standard_horizon_days).timestamp(),
            priority_hold_ends_at(self.policy, day).timestamp(),
            held_stall_count(self.policy, active_stalls),
            active_stalls,
            self.idempotency_ttl_seconds,
        ]
        decision = await self.ledger.book(argv, envelope.model_dump_json())
        if decision.outcome == "ok":
            booking = dataclasses.replace(booking, priority=decision.extra[0] == "1")
        return decision, booking

    async def owned(self, vendor_id: str | None, booking_id: str) -> Booking:
        """The booking if ``vendor_id`` holds it (any vendor's when ``None``), else not found."""
        booking = await self.ledger.get(booking_id) if len(booking_id) <= 64 else None
        if booking is None or (vendor_id is not None and booking.vendor_id != vendor_id):
            raise rejected("booking_not_found")
        return booking

    def _released(self, booking: Booking, cause: str, now: datetime) -> OutboxEvent:
        return self._outbox(
            StallReleased(
                market_id=booking.market_id,
                stall_id=booking.stall_id,
                date=booking.date,
                window_id=booking.window_id,
                cause=cause,
            ),
            time=now,
        )

    def _no_show_terms(self, now: datetime) -> tuple[float, int, float, str]:
        until = now + timedelta(seconds=self.policy.no_show_suspension_seconds)
        since = now.timestamp() - self.policy.no_show_period_seconds
        return since, self.policy.no_show_limit, until.timestamp(), until.isoformat()

    async def _apply(
        self,
        booking: Booking,
        action: BookingAction,
        *,
        owner: str | None,
        fields: dict[str, str],
        events: list[OutboxEvent],
        now: datetime,
        no_show: bool = False,
        code: tuple[str, int] | None = None,
    ) -> Booking:
        target = next_state(booking.state, action)
        allowed = frozenset(s for (s, a) in TRANSITIONS if a is action)
        decision = await self.ledger.transition(
            now=now.timestamp(),
            booking_id=booking.id,
            owner=owner,
            allowed_from=allowed,
            to_state=target,
            release=target not in ACTIVE_STATES,
            fields=fields,
            events=events,
            no_show=self._no_show_terms(now) if no_show else None,
            code=code,
        )
        if decision.outcome == "err":
            if decision.value == "illegal_transition":
                next_state(BookingState(decision.extra[0]), action)  # raises with the real state
            raise rejected(decision.value)
        updated = await self.ledger.get(booking.id)
        if updated is None:
            raise rejected("booking_not_found")
        return updated

    async def cancel(self, vendor_id: str, booking_id: str) -> Booking:
        """Cancel: free before the cutoff, counted as a no-show after it."""
        booking = await self.owned(vendor_id, booking_id)
        next_state(booking.state, BookingAction.CANCEL)
        now = self.clock.now()
        if now >= booking.ends_at:
            raise rejected("window_passed")
        late = cancellation_is_late(self.policy, booking.starts_at, now)
        cancelled = BookingCancelled(
            **_about(booking),
            late=late,
        )
        return await self._apply(
            booking,
            BookingAction.CANCEL,
            owner=vendor_id,
            fields={"cancelled_ts": str(now.timestamp()), "late": "1" if late else "0"},
            events=[self._outbox(cancelled, time=now), self._released(booking, "cancelled", now)],
            now=now,
            no_show=late,
        )

    async def check_in(
        self, vendor_id: str, booking_id: str, code_text: str, public_key: Ed25519PublicKey
    ) -> Booking:
        """Check in by presenting the stall's code within the check-in window."""
        code = stall_codes.verify(public_key, code_text)
        if code is None:
            raise rejected("stall_code_invalid")
        booking = await self.owned(vendor_id, booking_id)
        next_state(booking.state, BookingAction.CHECK_IN)
        if code.stall_id != booking.stall_id:
            raise rejected("wrong_stall")
        now = self.clock.now()
        opens, closes = check_in_window(
            self.policy, booking.starts_at, booking.ends_at, booking.created_at
        )
        if not opens <= now <= closes:
            raise rejected(
                "check_in_closed", opens_at=opens.isoformat(), closes_at=closes.isoformat()
            )
        checked_in = BookingCheckedIn(
            **_about(booking),
            checked_in_at=now,
        )
        return await self._apply(
            booking,
            BookingAction.CHECK_IN,
            owner=vendor_id,
            fields={"checked_in_ts": str(now.timestamp())},
            events=[self._outbox(checked_in, time=now)],
            now=now,
            code=(code.stall_id, code.version),
        )

    async def mark_no_shows(
        self, market_id: str, day: date, window_id: str, deadline: datetime
    ) -> list[Booking]:
        """Bookings of a window not checked in by the deadline become no-shows; stalls free."""
        ids = await self.ledger.window_booking_ids(market_id, day, window_id)
        marked: list[Booking] = []
        for booking in await self.ledger.get_many(ids):
            if booking.state is not BookingState.BOOKED or booking.created_at > deadline:
                continue
            now = self.clock.now()
            no_show = BookingNoShow(
                **_about(booking),
                no_shows_in_period=1,
            )
            envelope = Envelope.wrap(no_show, source=self.source, time=now)
            body = envelope.model_dump(mode="json")
            # Filled in by the script, which counts the no-shows atomically.
            body["data"]["no_shows_in_period"] = "__NOSHOWS__"
            body["data"]["suspended_until"] = "__SUSPENDED_UNTIL__"
            event = OutboxEvent(
                no_show.topic, no_show.market_id, envelope.id, envelope.type, json.dumps(body)
            )
            with contextlib.suppress(IllegalTransition):  # checked in or cancelled meanwhile
                marked.append(
                    await self._apply(
                        booking,
                        BookingAction.MARK_NO_SHOW,
                        owner=None,
                        fields={},
                        events=[event, self._released(booking, "no_show", now)],
                        now=now,
                        no_show=True,
                    )
                )
        return marked

    async def suspend_bookings(self, market: Market, days: list[date], reason: str) -> int:
        """Cancel, without penalty, every active booking of the market on ``days``."""
        count = 0
        for day in days:
            for window in market.windows:
                ids = await self.ledger.window_booking_ids(market.id, day, window.id)
                for booking in await self.ledger.get_many(ids):
                    if booking.state not in ACTIVE_STATES:
                        continue
                    now = self.clock.now()
                    suspended = BookingSuspendedByMarket(
                        **_about(booking),
                        reason=reason,
                    )
                    try:
                        await self._apply(
                            booking,
                            BookingAction.SUSPEND,
                            owner=None,
                            fields={"reason": reason, "cancelled_ts": str(now.timestamp())},
                            events=[
                                self._outbox(suspended, time=now),
                                self._released(booking, "suspended", now),
                            ],
                            now=now,
                        )
                        count += 1
                    except IllegalTransition:  # changed meanwhile
                        pass
        return count
