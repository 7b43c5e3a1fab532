"""The lottery of each market window: applications until the draw, one draw, then first come.

Applications open with the vendor's booking horizon (D-7 priority, D-3 others) and close at the
draw (D-2 20:00 by default). The first application schedules the draw: its seed is drawn then
and only its SHA-256 published (``draw.scheduled``), before any input exists. At the draw the
inputs are frozen (pseudonyms, preferences, what the booking rules allow each applicant), the
pure draw of :mod:`contracts.lottery` runs, inputs and result are stored, then each award is
booked through the booking script (same events as any booking), and ``draw.completed`` reveals
the seed. Each step is stored before the next, and bookings carry an idempotency key per vendor
and draw, so a replica that takes over a crashed draw books exactly what was drawn, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from allocation.adapters.catalogue_store import CatalogueStore
from allocation.adapters.draw_store import DrawRecord, DrawStore, member, parse_member
from allocation.adapters.ledger import Ledger, OutboxEvent, as_json
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.errors import BookingRejected, Rejected, rejected
from allocation.domain.rules import (
    Policy,
    WindowOccurrence,
    booking_opens_at,
    draw_at,
    held_stall_count,
    occurrence,
)
from allocation.service_layer.bookings import BookingService, BookStall
from contracts.catalogue import Category, Market
from contracts.envelope import Envelope, Event
from contracts.events import DrawCompleted, DrawScheduled
from contracts.lottery import (
    MAX_PREFERENCES,
    Applicant,
    DrawInputs,
    DrawResult,
    DrawStall,
    draw,
    seed_commitment,
)
from stallkit.clock import Clock

log = logging.getLogger(__name__)

#: How long a replica holds a draw before another may take it over.
LEASE_MS = 60_000
#: How long a booking waits for a draw another replica is running.
WAIT_FOR_DRAW_SECONDS = 30.0


@dataclass(frozen=True)
class Apply:
    """Command: apply for a window's draw with up to three ranked stalls (none: any)."""

    vendor_id: str
    market_id: str
    date: date
    window_id: str
    stall_ids: tuple[str, ...]


def pseudonym(salt: str, vendor_id: str) -> str:
    """The applicant's name in the published draw: stable within it, meaningless outside."""
    digest = hmac.new(bytes.fromhex(salt), vendor_id.encode(), hashlib.sha256).hexdigest()
    return f"ap_{digest[:16]}"


class DrawService:
    """Applications, draws and their publication."""

    def __init__(
        self,
        store: DrawStore,
        bookings: BookingService,
        catalogue: CatalogueStore,
        vendors: VendorStore,
        ledger: Ledger,
        clock: Clock,
        policy: Policy,
        *,
        source: str,
    ):
        self.store = store
        self.bookings = bookings
        self.catalogue = catalogue
        self.vendors = vendors
        self.ledger = ledger
        self.clock = clock
        self.policy = policy
        self.source = source
        self.replica = uuid.uuid4().hex[:12]
        #: Draws seen scheduled (their salt, commitment and time do not change).
        self._known: dict[str, DrawRecord] = {}

    # -- the window -------------------------------------------------------------------------

    async def _window(
        self, market_id: str, day: date, window_id: str
    ) -> tuple[Market, WindowOccurrence]:
        view = self.catalogue.view
        if market_id not in view.markets:
            view = await self.catalogue.refresh()
        market = view.markets.get(market_id)
        if market is None:
            raise rejected("market_not_found", f"no market {market_id}")
        return market, occurrence(market, window_id, day)

    def _outbox(self, event: Event) -> OutboxEvent:
        envelope = Envelope.wrap(event, source=self.source, time=self.clock.now())
        return OutboxEvent(
            event.topic, event.market_id, envelope.id, envelope.type, envelope.model_dump_json()
        )

    async def _scheduled(self, market_id: str, day: date, window_id: str) -> DrawRecord:
        """The draw, scheduled now (seed drawn, commitment published) if it was not."""
        record = await self.store.get(market_id, day, window_id)
        if record is not None:
            self._known[member(market_id, day, window_id)] = record
            return record
        seed = secrets.token_hex(32)
        commitment = seed_commitment(seed)
        at = draw_at(self.policy, day)
        event = DrawScheduled(
            market_id=market_id, date=day, window_id=window_id, commitment=commitment, draw_at=at
        )
        await self.store.schedule(
            market_id, day, window_id, seed=seed, salt=secrets.token_hex(16),
            commitment=commitment, draw_at=at.timestamp(), event=self._outbox(event),
        )  # fmt: skip
        scheduled = await self.store.get(market_id, day, window_id)  # ours, or a replica's first
        assert scheduled is not None
        self._known[member(market_id, day, window_id)] = scheduled
        return scheduled

    # -- applications -------------------------------------------------------------------------

    async def apply(self, command: Apply) -> tuple[dict[str, Any], bool]:
        """Apply, or change the preferences of an application; (application, created)."""
        if not self.policy.lottery:
            raise rejected("draw_not_found", "windows are booked first come, first served here")
        if len(command.stall_ids) > MAX_PREFERENCES:
            raise rejected("stall_not_found", f"at most {MAX_PREFERENCES} stalls")
        market, occ = await self._window(command.market_id, command.date, command.window_id)
        now = self.clock.now()
        closes = draw_at(self.policy, command.date)
        if now >= closes:
            raise rejected("applications_closed", draw_at=closes.isoformat())
        view = self.catalogue.view
        categories: set[str] = set()
        for stall_id in command.stall_ids:
            stall = view.stalls.get(stall_id)
            if stall is None or stall.market_id != market.id or not stall.active:
                raise rejected("stall_not_found", f"no stall {stall_id} in {market.id}")
            categories.add(stall.category.value)
        market_categories = (
            set()
            if command.stall_ids
            else {s.category.value for s in view.stalls.values()
                  if s.market_id == market.id and s.active}
        )  # fmt: skip
        # What an application needs of the draw (salt, commitment, time) never changes once it
        # is scheduled: read once per replica; the script checks the draw is still open.
        name = member(market.id, command.date, command.window_id)
        record = self._known.get(name) or await self._scheduled(
            market.id, command.date, command.window_id
        )
        vendor_id = command.vendor_id
        application = {
            "stall_ids": list(command.stall_ids),
            "applied_at": now.isoformat(),
            "pseudonym": pseudonym(record.salt, vendor_id),
        }
        # The vendor (suspension, horizon, permits as verified on the window's date) is checked
        # in the script with the rest: one round trip, as a booking.
        opens = tuple(
            booking_opens_at(command.date, days).timestamp()
            for days in (self.policy.priority_horizon_days, self.policy.standard_horizon_days)
        )
        decision = await self.store.apply(
            market.id, command.date, command.window_id, vendor_id=vendor_id,
            starts_at=occ.starts_at.timestamp(), ends_at=occ.ends_at.timestamp(),
            week=occ.iso_week, weekly_cap=self.policy.weekly_cap, application=application,
            draw_at=record.draw_at, now=now.timestamp(), opens=(opens[0], opens[1]),
            categories=sorted(categories), market_categories=sorted(market_categories),
        )  # fmt: skip
        if decision.outcome == "err":
            if decision.value == "vendor_suspended" and decision.extra:
                until = datetime.fromtimestamp(float(decision.extra[0]), tz=UTC)
                raise rejected("vendor_suspended", suspended_until=until.isoformat())
            extra = {"conflicting": decision.extra[0]} if decision.extra else {}
            raise rejected(decision.value, **extra)
        answer = {
            "market_id": market.id,
            "date": command.date,
            "window_id": command.window_id,
            **application,
            "status": "pending",
            "booking_id": None,
            "stall_id": None,
            "reason": None,
            "draw": {
                "state": "open",
                "draw_at": datetime.fromtimestamp(record.draw_at, tz=UTC),
                "commitment": record.commitment,
            },
        }
        return answer, decision.value == "created"

    async def withdraw(self, vendor_id: str, market_id: str, day: date, window_id: str) -> None:
        """Withdraw an application while the draw is open."""
        decision = await self.store.withdraw(market_id, day, window_id, vendor_id)
        if decision.outcome == "err":
            raise rejected(decision.value)

    async def view(self, vendor_id: str, name: str) -> dict[str, Any]:
        """A vendor's application to one draw, with the draw's state and what it gave them."""
        market_id, day, window_id = parse_member(name)
        record = await self.store.get(market_id, day, window_id)
        application = await self.store.application(market_id, day, window_id, vendor_id)
        if record is None or application is None:
            raise rejected("application_not_found")
        outcome = (await self.store.outcomes(market_id, day, window_id)).get(vendor_id)
        status = "pending" if outcome is None else outcome["status"]
        return {
            "market_id": market_id,
            "date": day,
            "window_id": window_id,
            "stall_ids": application["stall_ids"],
            "applied_at": application["applied_at"],
            "pseudonym": application["pseudonym"],
            "status": status,
            "booking_id": None if outcome is None else outcome.get("booking_id"),
            "stall_id": None if outcome is None else outcome.get("stall_id"),
            "reason": None if outcome is None else outcome.get("reason"),
            "draw": {
                "state": record.state,
                "draw_at": datetime.fromtimestamp(record.draw_at, tz=UTC),
                "commitment": record.commitment,
            },
        }

    async def mine(self, vendor_id: str) -> list[dict[str, Any]]:
        """A vendor's applications, newest draw first (pending and decided)."""
        views = []
        for name in await self.store.vendor_history(vendor_id):
            try:
                views.append(await self.view(vendor_id, name))
            except Rejected:
                continue  # withdrawn
        return views

    async def publication(self, market_id: str, day: date, window_id: str) -> dict[str, Any]:
        """What is public of a draw: before it, the commitment; after, inputs and result."""
        record = await self.store.get(market_id, day, window_id)
        if record is None:
            raise rejected("draw_not_found")
        applicants = len(await self.store.applications(market_id, day, window_id))
        out: dict[str, Any] = {
            "market_id": market_id,
            "date": day,
            "window_id": window_id,
            "state": record.state,
            "draw_at": datetime.fromtimestamp(record.draw_at, tz=UTC),
            "commitment": record.commitment,
            "applicants": applicants,
            "inputs": None,
            "result": None,
            "result_digest": None,
        }
        if record.state in ("drawn", "done") and record.inputs and record.result:
            result = DrawResult.model_validate_json(record.result)
            out["inputs"] = DrawInputs.model_validate_json(record.inputs)
            out["result"] = result
            out["result_digest"] = result.digest()
        return out

    # -- the draw -----------------------------------------------------------------------------

    async def run_due(self) -> int:
        """Run every draw whose time has come; how many completed."""
        done = 0
        for name in await self.store.due(self.clock.now().timestamp()):
            market_id, day, window_id = parse_member(name)
            try:
                if await self.run(market_id, day, window_id, wait=False):
                    done += 1
            except Exception:
                log.exception("draw failed; it is tried again", extra={"draw": name})
        return done

    async def run(self, market_id: str, day: date, window_id: str, *, wait: bool = True) -> bool:
        """Run the draw to its end, once across replicas; whether it is done.

        A draw another replica holds is waited for (``wait``) or left to it.
        """
        market, occ = await self._window(market_id, day, window_id)
        record = await self._scheduled(market_id, day, window_id)
        if record.state == "done":
            await self._tidy(market_id, day, window_id, record)
            return True
        if self.clock.now().timestamp() < record.draw_at:
            return False
        owner = f"{self.replica}:{uuid.uuid4().hex[:8]}"
        loop = asyncio.get_running_loop()
        give_up = loop.time() + WAIT_FOR_DRAW_SECONDS
        while not await self.store.lease(market_id, day, window_id, owner, LEASE_MS):
            if not wait or loop.time() > give_up:
                return False
            await asyncio.sleep(0.1)
            current = await self.store.get(market_id, day, window_id)
            if current is not None and current.state == "done":
                return True
        try:
            await self._advance(market, occ, owner)
        finally:
            await self.store.release(market_id, day, window_id, owner)
        return True

    async def _advance(self, market: Market, occ: WindowOccurrence, owner: str) -> None:
        """Take the draw from wherever it stands to done."""
        at = (market.id, occ.date, occ.window.id)
        await self.store.step(*at, from_state="open", to_state="closed")
        record = await self.store.get(*at)
        assert record is not None
        if record.state == "closed":
            inputs, who = await self._freeze(market, occ, record)
            result = draw(inputs)
            await self.store.step(
                *at, from_state="closed", to_state="drawn",
                fields={"inputs": inputs.model_dump_json(), "result": result.model_dump_json(),
                        "who": as_json(who)},
            )  # fmt: skip
            record = await self.store.get(*at)
            assert record is not None
        if record.state == "drawn":
            await self._book_awards(market, occ, record, owner)

    async def _freeze(
        self, market: Market, occ: WindowOccurrence, record: DrawRecord
    ) -> tuple[DrawInputs, dict[str, str]]:
        """The draw's inputs: the applications as they closed, what the rules allow each."""
        day, window_id = occ.date, occ.window.id
        applications = await self.store.applications(market.id, day, window_id)
        view = self.catalogue.view
        stalls = sorted(
            (s for s in view.stalls.values() if s.market_id == market.id and s.active),
            key=lambda s: s.id,
        )
        claimed = await self.ledger.claimed_stalls([s.id for s in stalls], day, window_id)
        free = [
            DrawStall(stall_id=s.id, category=s.category) for s in stalls if s.id not in claimed
        ]
        free_ids = {s.stall_id for s in free}
        held = min(held_stall_count(self.policy, len(stalls)), len(free))
        applicants, who = [], {}
        for vendor_id, application in sorted(applications.items()):
            vendor = await self.vendors.get(vendor_id, on=day)  # verified, valid that day
            if vendor is None:
                continue
            eligible = await self._may_book(vendor_id, occ)
            if vendor.suspended_until is not None and vendor.suspended_until > occ.starts_at:
                eligible = False
            categories = set(vendor.categories)
            certificate = vendor.health_certificate_expires
            if certificate is None or certificate < day:
                categories.discard(Category.COOKED_FOOD)
            name = application["pseudonym"]
            who[name] = vendor_id
            applicants.append(
                Applicant(
                    pseudonym=name,
                    priority=vendor.priority_group.is_priority,
                    categories=frozenset(categories),
                    preferences=tuple(s for s in application["stall_ids"] if s in free_ids),
                    eligible=eligible,
                )
            )
        inputs = DrawInputs(
            market_id=market.id, date=day.isoformat(), window_id=window_id, seed=record.seed,
            held_count=held, stalls=tuple(free), applicants=tuple(applicants),
        )  # fmt: skip
        return inputs, who

    async def _may_book(self, vendor_id: str, occ: WindowOccurrence) -> bool:
        """Whether the weekly cap and one-body-one-place still let the vendor book the window."""
        keys = self.store.keys
        week = await self.store.redis.scard(keys.vendor_week(vendor_id, occ.iso_week))
        if week >= self.policy.weekly_cap:
            return False
        spans = await self.store.redis.hvals(keys.vendor_active(vendor_id))
        start, end = occ.starts_at.timestamp(), occ.ends_at.timestamp()
        for span in spans:
            s, _, e = span.decode().partition(",")
            if float(s) < end and float(e) > start:
                return False
        return True

    async def _book_awards(
        self, market: Market, occ: WindowOccurrence, record: DrawRecord, owner: str
    ) -> None:
        """Book each award (idempotently), tell everyone, then close the draw with its event."""
        assert record.result is not None
        at = (market.id, occ.date, occ.window.id)
        result = DrawResult.model_validate_json(record.result)
        known = await self.store.outcomes(*at)
        key = f"draw:{market.id}:{occ.date.isoformat()}:{occ.window.id}"
        for award in result.awards:
            vendor_id = record.who[award.pseudonym]
            if vendor_id in known:
                continue
            await self.store.lease(*at, owner, LEASE_MS)
            command = BookStall(vendor_id, award.stall_id, occ.date, occ.window.id, key)
            try:
                booking, _ = await self.bookings.book(command, from_draw=True)
                outcome = {"status": "won", "booking_id": booking.id, "stall_id": booking.stall_id}
            except BookingRejected as exc:  # the rules changed between freezing and booking
                outcome = {"status": "void", "stall_id": award.stall_id, "reason": exc.code}
            await self.store.record_outcome(*at, vendor_id, outcome)
            known[vendor_id] = outcome
        for name in result.unplaced:
            vendor_id = record.who[name]
            if vendor_id not in known:
                outcome = {"status": "lost"}
                await self.store.record_outcome(*at, vendor_id, outcome)
                known[vendor_id] = outcome
        inputs = DrawInputs.model_validate_json(record.inputs or "{}")
        applicant_ids = sorted(record.who.values())
        priority_ids = sorted(record.who[a.pseudonym] for a in inputs.applicants if a.priority)
        winners = sorted(v for v, o in known.items() if o["status"] == "won")
        completed = DrawCompleted(
            market_id=market.id, date=occ.date, window_id=occ.window.id, seed=record.seed,
            result_digest=result.digest(), stalls=len(inputs.stalls),
            applicant_ids=applicant_ids, priority_applicant_ids=priority_ids, winner_ids=winners,
        )  # fmt: skip
        await self.store.step(*at, from_state="drawn", to_state="done",
                              event=self._outbox(completed))  # fmt: skip
        await self._tidy(*at, record)

    async def _tidy(self, market_id: str, day: date, window_id: str, record: DrawRecord) -> None:
        """A done draw leaves the due set and its applicants' pending applications (again after
        a crash: both are idempotent)."""
        await self.store.forget_applications(market_id, day, window_id, list(record.who.values()))
        await self.store.undue(member(market_id, day, window_id))
