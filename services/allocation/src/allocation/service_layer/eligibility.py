"""Eligibility claims: vendors add them, district staff and administrators decide them.

A decision is computed from one read of the vendor's claims and written only if they did not
change meanwhile (else it is computed again): the claim, the vendor's verified eligibility (the
fields the booking script reads) and ``vendor.eligibility.changed`` go to Redis in one script,
so the outbox never misses or invents a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from allocation.adapters.ledger import OutboxEvent
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.eligibility import (
    MAX_CLAIMS,
    Claim,
    ClaimKind,
    ClaimStatus,
    Eligibility,
    decide,
    eligibility_of,
)
from allocation.domain.errors import rejected
from allocation.domain.model import Vendor
from allocation.service_layer.bookings import new_id
from contracts.envelope import Envelope
from contracts.events import VendorEligibilityChanged
from stallkit.clock import MARKET_TZ, Clock

#: How often a write is computed again when the vendor's claims changed meanwhile.
WRITE_ATTEMPTS = 10


@dataclass(frozen=True)
class DecideClaim:
    """Command: staff verify or reject (revoke) one claim."""

    vendor_id: str
    claim_id: str
    decision: ClaimStatus
    decided_by: str
    document_ref: str | None = None
    expires: date | None = None
    reason: str | None = None


@dataclass(frozen=True)
class VendorClaims:
    """A vendor, what counts for them now, and every claim."""

    vendor: Vendor
    eligibility: Eligibility
    claims: list[Claim]


@dataclass(frozen=True)
class QueuedClaim:
    """A claim in a staff work queue, with whose it is."""

    vendor_id: str
    vendor_name: str
    claim: Claim


class EligibilityService:
    """Claims and their decisions."""

    def __init__(self, vendors: VendorStore, clock: Clock, *, source: str):
        self.vendors = vendors
        self.clock = clock
        self.source = source

    def today(self) -> date:
        """The local date now."""
        return self.clock.now().astimezone(MARKET_TZ).date()

    async def of(self, vendor_id: str) -> VendorClaims:
        """A vendor's claims and what counts today; ``vendor_not_found``."""
        today = self.today()
        vendor = await self.vendors.get(vendor_id, on=today)
        eligibility = await self.vendors.eligibility(vendor_id)
        if vendor is None or eligibility is None:
            raise rejected("vendor_not_found")
        return VendorClaims(vendor, eligibility.on(today), await self.vendors.claims(vendor_id))

    async def queue(
        self, status: ClaimStatus, *, limit: int, offset: int
    ) -> tuple[int, list[QueuedClaim]]:
        """Every vendor's claims in ``status``: pending ones oldest first (a work queue),
        decided ones newest first."""
        total, page = await self.vendors.queue(
            status, limit=limit, offset=offset, oldest_first=status is ClaimStatus.CLAIMED
        )
        names = await self.vendors.names(v for v, _ in page)
        return total, [QueuedClaim(v, names.get(v, ""), c) for v, c in page]

    async def add(self, vendor_id: str, kind: ClaimKind, value: str) -> Claim:
        """A vendor states one more claim; ``claim_pending`` if the same one waits already."""
        if kind is ClaimKind.HEALTH_CERTIFICATE and date.fromisoformat(value) < self.today():
            raise rejected("date_in_past", "the health certificate has expired")
        for _ in range(WRITE_ATTEMPTS):
            read = await self.vendors.read_claims(vendor_id)
            if read is None:
                raise rejected("vendor_not_found")
            if any(
                c.kind is kind and c.value == value and c.status is ClaimStatus.CLAIMED
                for c in read.claims.values()
            ):
                raise rejected("claim_pending")
            if len(read.claims) >= MAX_CLAIMS:
                raise rejected("too_many_claims", limit=MAX_CLAIMS)
            claim = Claim(
                id=new_id("cl"), kind=kind, value=value, status=ClaimStatus.CLAIMED,
                claimed_at=self.clock.now(),
            )  # fmt: skip
            outcome = await self.vendors.write_claim(vendor_id, read.version, claim)
            if outcome == "ok":
                return claim
            if outcome == "vendor_not_found":
                raise rejected("vendor_not_found")
        raise rejected("claims_changed")

    async def decide(self, command: DecideClaim) -> VendorClaims:
        """Verify, reject or revoke a claim; the vendor's eligibility and its event follow."""
        for _ in range(WRITE_ATTEMPTS):
            read = await self.vendors.read_claims(command.vendor_id)
            if read is None:
                raise rejected("vendor_not_found")
            claim = read.claims.get(command.claim_id)
            if claim is None:
                raise rejected("claim_not_found")
            now, today = self.clock.now(), self.today()
            decided = decide(
                claim,
                command.decision,
                by=command.decided_by,
                at=now,
                today=today,
                document_ref=command.document_ref,
                expires=command.expires,
                reason=command.reason,
            )
            eligibility = eligibility_of({**read.claims, decided.id: decided}.values())
            event = self._event(command.vendor_id, eligibility.on(today), decided)
            outcome = await self.vendors.write_claim(
                command.vendor_id,
                read.version,
                decided,
                was=claim.status,
                eligibility=eligibility,
                event=event,
            )
            if outcome == "ok":
                return await self.of(command.vendor_id)
            if outcome == "vendor_not_found":
                raise rejected("vendor_not_found")
        raise rejected("claims_changed")

    def _event(self, vendor_id: str, now_valid: Eligibility, claim: Claim) -> OutboxEvent:
        """``vendor.eligibility.changed``: what counts after the decision, and the decision."""
        limits = {c: u for c, u in now_valid.categories.items() if u is not None}
        event = VendorEligibilityChanged(
            vendor_id=vendor_id,
            priority_group=now_valid.priority_group,
            priority_until=now_valid.priority_until,
            categories=sorted(now_valid.categories),
            category_until=limits,
            health_certificate_until=now_valid.health_until,
            claim_id=claim.id,
            claim_kind=claim.kind,
            claim_value=claim.value,
            decision=claim.status,
            decided_by=claim.decided_by or "",
        )
        envelope = Envelope.wrap(event, source=self.source, time=self.clock.now())
        return OutboxEvent(
            event.topic, event.market_id, envelope.id, envelope.type, envelope.model_dump_json()
        )
