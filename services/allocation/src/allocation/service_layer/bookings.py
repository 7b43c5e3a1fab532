"""Booking use cases: book, cancel, check in, no-shows, market suspensions."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from allocation.adapters.catalogue_store import CatalogueStore, window_signature
from allocation.adapters.ledger import BookingAttempt, Decision, Ledger, NoShowCount, OutboxEvent
from allocation.domain import stall_codes
from allocation.domain.errors import BookingRejected, IllegalTransition, rejected
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
    draw_at,
    held_stall_count,
    no_show_period_start,
    no_show_suspension,
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

#: How often a transition is tried again when what it read changed before the script ran.
TRANSITION_ATTEMPTS = 5

#: Builds the no-show event from the vendor's no-shows in the period and their suspension end.
NoShowEvent = Callable[[int, datetime | None], OutboxEvent]

#: Runs (or waits for) the draw of a window occurrence: market, date, window.
DrawRunner = Callable[[str, date, str], Awaitable[None]]


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
        attempts_per_minute: int = 0,
    ):
        self.ledger = ledger
        self.catalogue = catalogue
        self.clock = clock
        self.policy = policy
        self.source = source
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        #: Booking attempts a vendor may make in a minute (0: no limit); the draw's do not count.
        self.attempts_per_minute = attempts_per_minute
        #: Set by the composition root: a booking that finds its window's draw not run yet
        #: runs it (or waits for the replica running it), then tries again.
        self.run_draw: DrawRunner | None = None

    def _outbox(self, event: Event, *, time: datetime, event_id: str | None = None) -> OutboxEvent:
        envelope = Envelope.wrap(event, source=self.source, time=time, event_id=event_id)
        return OutboxEvent(
            event.topic, event.market_id, envelope.id, envelope.type, envelope.model_dump_json()
        )

    async def _placement(self, stall_id: str) -> tuple[Stall, Market, int]:
        """The stall, its market and how many of the market's stalls are bookable."""
        view = self.catalogue.view
        if stall_id not in view.stalls:  # one version read; a reload only if it moved
            view = await self.catalogue.refresh()
        stall = view.stalls.get(stall_id)
        if stall is None:
            raise rejected("stall_not_found", f"no stall {stall_id}")
        market = view.markets[stall.market_id]
        return stall, market, view.active_stall_count(market.id)

    async def book(self, command: BookStall, *, from_draw: bool = False) -> tuple[Booking, bool]:
        """Book, or replay an earlier identical request; returns (booking, replayed).

        ``from_draw``: a lottery winner's booking, made by the draw itself.
        """
        stale = drawn = False
        while True:
            decision, booking = await self._try_book(command, from_draw=from_draw)
            if decision.outcome == "err" and decision.value == "stale" and not stale:
                stale = True
                await self.catalogue.refresh(force=True)
                continue
            if decision.outcome == "err" and decision.value == "draw_pending" and not drawn:
                drawn = True
                if self.run_draw is not None:
                    await self.run_draw(booking.market_id, booking.date, booking.window_id)
                    continue
            break
        if decision.outcome == "replay":
            replayed = await self.ledger.get(decision.value)
            if replayed is None:
                raise BookingRejected("booking_not_found")
            return replayed, True
        if decision.outcome == "err" and decision.value == "too_many_bookings":
            retry_at = float(decision.extra[0])  # the next minute of the service clock
            wait = max(1, math.ceil(retry_at - self.clock.now().timestamp()))
            raise BookingRejected("too_many_bookings", retry_after_seconds=wait)
        if decision.outcome == "err":
            raise self._rejection(decision)
        return booking, False

    @staticmethod
    def _rejection(decision: Decision) -> BookingRejected:
        code = decision.value
        if code == "stale":
            return BookingRejected("catalogue_conflict", "the catalogue changed; try again")
        if code == "vendor_suspended" and decision.extra:
            until = datetime.fromtimestamp(float(decision.extra[0]), tz=UTC)
            return BookingRejected(code, suspended_until=until.isoformat())
        if code == "market_suspended" and decision.extra:
            return BookingRejected(code, decision.extra[0], reason=decision.extra[0])
        if code == "overlapping_booking" and decision.extra:
            return BookingRejected(code, conflicting_booking=decision.extra[0])
        if code == "applications_only" and decision.extra:
            until = datetime.fromtimestamp(float(decision.extra[0]), tz=UTC)
            return BookingRejected(code, draw_at=until.isoformat())
        return BookingRejected(code)

    async def _try_book(
        self, command: BookStall, *, from_draw: bool = False
    ) -> tuple[Decision, Booking]:
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
        created = BookingCreated(
            **_about(booking),
            category=stall.category,
            starts_at=occ.starts_at,
            ends_at=occ.ends_at,
            priority=False,
            check_in_closes_at=self.check_in_deadline(booking),
        )
        # Whether the vendor has priority is read inside the script: both events are ready.
        event_id = str(uuid.uuid4())
        day = command.date
        attempt = BookingAttempt(
            now=now.timestamp(),
            booking_id=booking.id,
            vendor_id=command.vendor_id,
            stall_id=stall.id,
            market_id=market.id,
            window_id=command.window_id,
            date=day,
            category=stall.category,
            starts_at=occ.starts_at.timestamp(),
            ends_at=occ.ends_at.timestamp(),
            window_signature=window_signature(market, command.window_id),
            idempotency_key=command.idempotency_key,
            body_hash=command.body_hash(),
            idempotency_ttl=self.idempotency_ttl_seconds,
            weekly_cap=self.policy.weekly_cap,
            opens_priority=0.0
            if from_draw
            else booking_opens_at(day, self.policy.priority_horizon_days).timestamp(),
            opens_standard=0.0
            if from_draw
            else booking_opens_at(day, self.policy.standard_horizon_days).timestamp(),
            hold_until=priority_hold_ends_at(self.policy, day).timestamp(),
            held=held_stall_count(self.policy, active_stalls),
            total=active_stalls,
            created_if_priority=self._outbox(
                created.model_copy(update={"priority": True}), time=now, event_id=event_id
            ),
            created_if_standard=self._outbox(created, time=now, event_id=event_id),
            lottery=self.policy.lottery,
            draw_at=draw_at(self.policy, day).timestamp(),
            from_draw=from_draw,
            attempt_limit=0 if from_draw else self.attempts_per_minute,
        )
        decision = await self.ledger.book(attempt)
        if decision.outcome == "ok":
            booking = dataclasses.replace(booking, priority=decision.extra[0] == "1")
        return decision, booking

    async def owned(self, vendor_id: str | None, booking_id: str) -> Booking:
        """The booking if ``vendor_id`` holds it (any vendor's when ``None``), else not found."""
        booking = await self.ledger.get(booking_id) if len(booking_id) <= 64 else None
        if booking is None or (vendor_id is not None and booking.vendor_id != vendor_id):
            raise BookingRejected("booking_not_found")
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

    async def _no_show_count(self, vendor_id: str, now: datetime) -> NoShowCount:
        """The vendor's no-shows so far and what one more means (the script checks the count)."""
        since = no_show_period_start(self.policy, now).timestamp()
        prior = await self.ledger.no_shows_since(vendor_id, since)
        until = no_show_suspension(self.policy, prior + 1, now)
        return NoShowCount(since, prior, until.timestamp() if until else None)

    def _no_show_event(
        self, booking: Booking, now: datetime, count: int, suspended_until: datetime | None
    ) -> OutboxEvent:
        no_show = BookingNoShow(
            **_about(booking), no_shows_in_period=count, suspended_until=suspended_until
        )
        return self._outbox(no_show, time=now)

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
        no_show_event: NoShowEvent | None = None,
    ) -> Booking:
        """Run the transition script; a no-show is counted, and ``no_show_event`` told the count."""
        target = next_state(booking.state, action)
        allowed = frozenset(s for (s, a) in TRANSITIONS if a is action)
        for _ in range(TRANSITION_ATTEMPTS):
            count = await self._no_show_count(booking.vendor_id, now) if no_show else None
            first: list[OutboxEvent] = []
            if count is not None and no_show_event is not None:
                until = count.suspend_until
                suspended = datetime.fromtimestamp(until, tz=UTC) if until is not None else None
                first = [no_show_event(count.prior + 1, suspended)]
            decision = await self.ledger.transition(
                booking,
                now=now.timestamp(),
                owner=owner,
                allowed_from=allowed,
                to_state=target,
                release=target not in ACTIVE_STATES,
                fields=fields,
                events=first + events,
                no_show=count,
                code=code,
            )
            if decision.outcome != "retry":
                break
            fresh = await self.ledger.get(booking.id)  # what was read no longer holds
            if fresh is None:
                raise BookingRejected("booking_not_found")
            booking = fresh
        else:
            raise RuntimeError(f"booking {booking.id}: the transition kept conflicting")
        if decision.outcome == "err":
            if decision.value == "illegal_transition":
                next_state(BookingState(decision.extra[0]), action)  # raises with the real state
            raise BookingRejected(decision.value)
        updated = await self.ledger.get(booking.id)
        if updated is None:
            raise BookingRejected("booking_not_found")
        return updated

    async def cancel(self, vendor_id: str, booking_id: str) -> Booking:
        """Cancel: free before the cutoff, counted as a no-show after it."""
        booking = await self.owned(vendor_id, booking_id)
        next_state(booking.state, BookingAction.CANCEL)
        now = self.clock.now()
        if now >= booking.ends_at:
            raise BookingRejected("window_passed")
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
            raise BookingRejected("stall_code_invalid")
        booking = await self.owned(vendor_id, booking_id)
        next_state(booking.state, BookingAction.CHECK_IN)
        if code.stall_id != booking.stall_id:
            raise BookingRejected("wrong_stall")
        now = self.clock.now()
        opens, closes = check_in_window(
            self.policy, booking.starts_at, booking.ends_at, booking.created_at
        )
        if not opens <= now <= closes:
            raise BookingRejected(
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

    def check_in_deadline(self, booking: Booking) -> datetime:
        """The booking's own check-in deadline: start + 30 min, later for a late booking."""
        return check_in_window(self.policy, booking.starts_at, booking.ends_at, booking.created_at)[
            1
        ]

    async def mark_no_shows(
        self, market_id: str, day: date, window_id: str, deadline: datetime
    ) -> list[Booking]:
        """Bookings of a window not checked in by the deadline become no-shows; stalls free.

        Only bookings whose own deadline is this one (or earlier): a booking made after the
        window started has a later one, announced for it alone (:meth:`mark_no_show`).
        """
        ids = await self.ledger.window_booking_ids(market_id, day, window_id)
        marked: list[Booking] = []
        for booking in await self.ledger.get_many(ids):
            if booking.state is BookingState.BOOKED and self.check_in_deadline(booking) <= deadline:
                marked += await self._mark_no_show(booking)
        return marked

    async def mark_no_show(self, booking_id: str, deadline: datetime) -> list[Booking]:
        """One booking's own deadline passed: a no-show unless checked in, cancelled or later."""
        booking = await self.ledger.get(booking_id)
        if (
            booking is None
            or booking.state is not BookingState.BOOKED
            or self.check_in_deadline(booking) > deadline
        ):
            return []
        return await self._mark_no_show(booking)

    async def _mark_no_show(self, booking: Booking) -> list[Booking]:
        now = self.clock.now()
        with contextlib.suppress(IllegalTransition):  # checked in or cancelled meanwhile
            return [
                await self._apply(
                    booking,
                    BookingAction.MARK_NO_SHOW,
                    owner=None,
                    fields={},
                    events=[self._released(booking, "no_show", now)],
                    now=now,
                    no_show=True,
                    no_show_event=functools.partial(self._no_show_event, booking, now),
                )
            ]
        return []

    async def suspend_bookings(self, market: Market, days: list[date], reason: str) -> int:
        """Cancel, without penalty, every active booking of the market on ``days``."""
        count = 0
        for day in days:
            for window in market.windows:
                count += await self.end_window_bookings(market.id, day, window.id, reason)
        return count

    async def end_window_bookings(
        self, market_id: str, day: date, window_id: str, reason: str
    ) -> int:
        """Cancel, without penalty, every active booking of one window instance."""
        count = 0
        ids = await self.ledger.window_booking_ids(market_id, day, window_id)
        for booking in await self.ledger.get_many(ids):
            if booking.state not in ACTIVE_STATES:
                continue
            now = self.clock.now()
            suspended = BookingSuspendedByMarket(**_about(booking), reason=reason)
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
