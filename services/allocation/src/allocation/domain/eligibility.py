"""Eligibility claims: what a vendor states, what staff verified, and what counts on a date.

A vendor's priority group, each category permit and the health certificate are *claims* until
district staff or an administrator verifies them (with a document reference and an optional
expiry) or rejects them (with a reason the vendor sees). Only verified claims count, each
through its expiry date (inclusive). A claim's lifecycle is one transition table: a claim is
decided once, and a verified claim can later be rejected (revoked); nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from allocation.domain.errors import rejected
from contracts.catalogue import Category
from contracts.events import ClaimKind, ClaimStatus, PriorityGroup

__all__ = [
    "CLAIM_TRANSITIONS",
    "MAX_CLAIMS",
    "Claim",
    "ClaimKind",
    "ClaimStatus",
    "Eligibility",
    "decide",
    "eligibility_of",
    "in_order",
    "stated_claims",
]

#: The one transition table of a claim: (from, to). Anything else is ``illegal_claim_transition``.
CLAIM_TRANSITIONS: frozenset[tuple[ClaimStatus, ClaimStatus]] = frozenset(
    {
        (ClaimStatus.CLAIMED, ClaimStatus.VERIFIED),
        (ClaimStatus.CLAIMED, ClaimStatus.REJECTED),
        (ClaimStatus.VERIFIED, ClaimStatus.REJECTED),  # revoked
    }
)

#: Claims one vendor may hold (pending and decided): a bound on what staff must read.
MAX_CLAIMS = 30


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Claim:
    """One thing a vendor stated about their eligibility, and what staff decided about it.

    ``value`` is the priority group, the category, or the health certificate's expiry date
    (``YYYY-MM-DD``) as the vendor stated it; ``expires`` is the last date a verification counts.
    """

    id: str
    kind: ClaimKind
    value: str
    status: ClaimStatus
    claimed_at: datetime
    document_ref: str | None = None
    expires: date | None = None
    reason: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None

    def to_json(self) -> str:
        """The claim as stored."""
        return json.dumps(
            {
                "id": self.id,
                "kind": self.kind.value,
                "value": self.value,
                "status": self.status.value,
                "claimed_at": self.claimed_at.isoformat(),
                "document_ref": self.document_ref,
                "expires": self.expires.isoformat() if self.expires else None,
                "reason": self.reason,
                "decided_by": self.decided_by,
                "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Claim:
        """A claim as stored."""
        d: dict[str, Any] = json.loads(text)
        return cls(
            id=d["id"],
            kind=ClaimKind(d["kind"]),
            value=d["value"],
            status=ClaimStatus(d["status"]),
            claimed_at=datetime.fromisoformat(d["claimed_at"]),
            document_ref=d.get("document_ref"),
            expires=_day(d.get("expires")),
            reason=d.get("reason"),
            decided_by=d.get("decided_by"),
            decided_at=_when(d.get("decided_at")),
        )

    @property
    def entered_status_at(self) -> datetime:
        """When the claim got its current status (the order of the staff work queues)."""
        return self.decided_at or self.claimed_at


_KIND_ORDER = {kind: i for i, kind in enumerate(ClaimKind)}


def in_order(claims: Iterable[Claim]) -> list[Claim]:
    """Claims oldest first; claims made together as stated: group, categories, certificate."""
    return sorted(claims, key=lambda c: (c.claimed_at, _KIND_ORDER[c.kind], c.value, c.id))


def stated_claims(
    priority_group: PriorityGroup,
    categories: Iterable[Category],
    health_certificate_expires: date | None,
) -> list[tuple[ClaimKind, str]]:
    """The claims a registration states: the group (unless none), each category, the certificate."""
    stated: list[tuple[ClaimKind, str]] = []
    if priority_group.is_priority:
        stated.append((ClaimKind.PRIORITY_GROUP, priority_group.value))
    stated += [(ClaimKind.CATEGORY, c.value) for c in sorted(set(categories))]
    if health_certificate_expires is not None:
        stated.append((ClaimKind.HEALTH_CERTIFICATE, health_certificate_expires.isoformat()))
    return stated


def decide(
    claim: Claim,
    to: ClaimStatus,
    *,
    by: str,
    at: datetime,
    today: date,
    document_ref: str | None = None,
    expires: date | None = None,
    reason: str | None = None,
) -> Claim:
    """The claim after staff decided it; ``illegal_claim_transition`` if its status forbids it.

    A verified health certificate counts until ``expires``, by default the expiry date the
    vendor stated; a verification that would count for no day from ``today`` is ``date_in_past``.
    """
    if (claim.status, to) not in CLAIM_TRANSITIONS:
        raise rejected(
            "illegal_claim_transition",
            f"a {claim.status.value} claim cannot be {to.value}",
            claim_status=claim.status.value,
        )
    if to is ClaimStatus.VERIFIED:
        if expires is None and claim.kind is ClaimKind.HEALTH_CERTIFICATE:
            expires = date.fromisoformat(claim.value)
        if expires is not None and expires < today:
            raise rejected("date_in_past", "the verification would already have expired")
        return replace(
            claim,
            status=to,
            document_ref=document_ref,
            expires=expires,
            reason=None,
            decided_by=by,
            decided_at=at,
        )
    return replace(
        claim,
        status=to,
        document_ref=document_ref or claim.document_ref,
        reason=reason,
        decided_by=by,
        decided_at=at,
    )


def _later(a: date | None, b: date | None) -> date | None:
    """The later of two last-valid dates, ``None`` meaning no expiry."""
    if a is None or b is None:
        return None
    return max(a, b)


@dataclass(frozen=True)
class Eligibility:
    """What counts for a vendor: verified claims, each with its last valid date (``None``: no
    expiry)."""

    priority_group: PriorityGroup = PriorityGroup.NONE
    priority_until: date | None = None
    categories: Mapping[Category, date | None] = field(default_factory=dict)
    health_until: date | None = None

    def on(self, day: date) -> Eligibility:
        """Only what is still valid on ``day``."""
        group, until = self.priority_group, self.priority_until
        if until is not None and until < day:
            group, until = PriorityGroup.NONE, None
        return Eligibility(
            priority_group=group,
            priority_until=until if group.is_priority else None,
            categories={c: u for c, u in self.categories.items() if u is None or u >= day},
            health_until=self.health_until
            if self.health_until is not None and self.health_until >= day
            else None,
        )


def eligibility_of(claims: Iterable[Claim]) -> Eligibility:
    """What the verified claims among ``claims`` let the vendor do, expired ones included.

    Several verified claims of one kind count for as long as the longest of them: the priority
    group is the one that lasts longest, a category counts until its last permit expires.
    """
    group, group_until, have_group = PriorityGroup.NONE, None, False
    categories: dict[Category, date | None] = {}
    health: date | None = None
    for claim in sorted(claims, key=lambda c: c.id):
        if claim.status is not ClaimStatus.VERIFIED:
            continue
        if claim.kind is ClaimKind.PRIORITY_GROUP:
            if not have_group or (
                group_until is not None and (claim.expires is None or claim.expires > group_until)
            ):
                group, group_until, have_group = PriorityGroup(claim.value), claim.expires, True
        elif claim.kind is ClaimKind.CATEGORY:
            category = Category(claim.value)
            if category in categories:
                categories[category] = _later(categories[category], claim.expires)
            else:
                categories[category] = claim.expires
        elif claim.expires is not None:
            health = claim.expires if health is None else max(health, claim.expires)
    return Eligibility(group, group_until, categories, health)
