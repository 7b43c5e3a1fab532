"""Vendors in Redis. Personal data (name, phone) stays here: never in events or logs.

A vendor is a hash whose eligibility fields are what counts, the *verified* claims only:
``priority`` / ``priority_group`` / ``priority_until``, ``categories`` with a ``cat_until:<c>``
per category, and ``health_until`` (dates ``YYYY-MM-DD``, '' for no expiry). ``book.lua`` reads
them and checks each expiry against the booking's date. The claims themselves (what the vendor
stated, what staff decided) are a hash of their own, and every claim is in the staff work queue
of its status; ``claims_version`` counts their changes, so that a decision computed from one
read of the claims is written only if they did not change meanwhile.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources

from allocation.adapters.keys import Keys
from allocation.adapters.ledger import OutboxEvent, as_json
from allocation.domain.eligibility import (
    Claim,
    ClaimKind,
    ClaimStatus,
    Eligibility,
    eligibility_of,
    in_order,
    stated_claims,
)
from allocation.domain.model import PriorityGroup, Vendor
from contracts.catalogue import Category
from stallkit.clock import MARKET_TZ
from stallkit.redis_client import RedisClient

#: Who decided the claims of a vendor created with its eligibility already verified.
SEEDED_BY = "system"


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def eligibility_fields(eligibility: Eligibility) -> dict[str, str]:
    """The vendor hash's eligibility fields for ``eligibility`` (every category's limit set)."""
    fields = {
        "priority": "1" if eligibility.priority_group.is_priority else "0",
        "priority_group": eligibility.priority_group.value,
        "priority_until": _iso(eligibility.priority_until),
        "categories": ",".join(sorted(c.value for c in eligibility.categories)),
        "health_until": _iso(eligibility.health_until),
    }
    for category in Category:
        fields[f"cat_until:{category.value}"] = _iso(eligibility.categories.get(category))
    return fields


def eligibility_from(fields: dict[str, str]) -> Eligibility:
    """The eligibility a vendor hash holds (absent limits: no expiry, as before they existed)."""
    return Eligibility(
        priority_group=PriorityGroup(fields.get("priority_group") or "none"),
        priority_until=_day(fields.get("priority_until")),
        categories={
            Category(c): _day(fields.get(f"cat_until:{c}"))
            for c in (fields.get("categories") or "").split(",")
            if c
        },
        health_until=_day(fields.get("health_until")),
    )


def _member(vendor_id: str, claim_id: str) -> str:
    return f"{vendor_id}|{claim_id}"


@dataclass(frozen=True)
class ClaimsRead:
    """A vendor's claims as read, with the version a write must still find."""

    version: str
    claims: dict[str, Claim]


class VendorStore:
    """Create and read vendors and their claims; phone numbers and identities are unique."""

    def __init__(self, redis: RedisClient, keys: Keys, today: Callable[[], date] | None = None):
        self.redis = redis
        self.keys = keys
        #: The local date eligibility is read for when no date is given.
        self.today = today or (lambda: datetime.now(MARKET_TZ).date())
        self._create = redis.register_script(_script("vendor_create.lua"))
        self._write_claim = redis.register_script(_script("claim_write.lua"))
        self._adopt = redis.register_script(_script("claims_adopt.lua"))

    async def create(self, vendor: Vendor, password_hash: str) -> bool:
        """Store a new vendor whose eligibility as given counts as verified (seeding, tests,
        benchmarks: matching verified claims are stored, decided by ``system``); ``False`` if
        the phone number is taken."""
        return await self.open_account(vendor, password_hash, claims=_seeded_claims(vendor)) is None

    async def open_account(
        self,
        vendor: Vendor,
        password_hash: str,
        *,
        claims: Sequence[Claim],
        identity_digest: str | None = None,
    ) -> str | None:
        """Store a new vendor with its ``claims`` (only the verified ones count); ``None`` once
        stored, else why not: ``phone_taken``, or ``identity_taken`` when the identity's digest
        is given (one account per identity)."""
        eligibility = eligibility_of(claims)
        fields = {
            "id": vendor.id,
            "name": vendor.name,
            "phone": vendor.phone,
            "password": password_hash,
            "suspended_until": "0",
            "created_ts": str(vendor.created_at.timestamp()),
            "claims_version": "0",
            **eligibility_fields(eligibility),
        }
        if identity_digest:
            fields["identity"] = identity_digest
        k = self.keys
        keys = [
            k.phone(vendor.phone),
            k.identity(identity_digest or "-"),
            k.vendor(vendor.id),
            k.eligibility_claims(vendor.id),
            *(k.claims_in_status(s.value) for s in ClaimStatus),
        ]
        inputs = {
            "vendor_id": vendor.id,
            "with_identity": bool(identity_digest),
            "fields": fields,
            "claims": [
                {
                    "id": c.id,
                    "json": c.to_json(),
                    "status": c.status.value,
                    "score": repr(c.entered_status_at.timestamp()),
                }
                for c in claims
            ],
        }
        outcome = (await self._create(keys=keys, args=[as_json(inputs)])).decode()
        return None if outcome == "created" else outcome

    async def id_for_phone(self, phone: str) -> str | None:
        """The vendor id registered with ``phone``."""
        raw = await self.redis.get(self.keys.phone(phone))
        return raw.decode() if raw else None

    async def identity_taken(self, digest: str) -> bool:
        """Whether an account holds the identity with this digest."""
        return bool(await self.redis.exists(self.keys.identity(digest)))

    async def password_hash(self, vendor_id: str) -> str | None:
        """The stored password hash."""
        raw = await self.redis.hget(self.keys.vendor(vendor_id), "password")
        return raw.decode() if raw else None

    async def get(self, vendor_id: str, *, on: date | None = None) -> Vendor | None:
        """One vendor, or ``None``; its eligibility is what is verified and valid ``on`` that
        local date (today by default)."""
        r = await self._fields(vendor_id)
        if r is None:
            return None
        eligibility = eligibility_from(r).on(on or self.today())
        suspended = float(r.get("suspended_until") or 0)
        return Vendor(
            id=r["id"],
            name=r["name"],
            phone=r["phone"],
            priority_group=eligibility.priority_group,
            categories=frozenset(eligibility.categories),
            health_certificate_expires=eligibility.health_until,
            suspended_until=datetime.fromtimestamp(suspended, tz=UTC) if suspended else None,
            created_at=datetime.fromtimestamp(float(r["created_ts"]), tz=UTC),
        )

    async def eligibility(self, vendor_id: str) -> Eligibility | None:
        """Every verified claim of the vendor with its limit (expired ones too), or ``None``."""
        r = await self._fields(vendor_id)
        return None if r is None else eligibility_from(r)

    async def _fields(self, vendor_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(self.keys.vendor(vendor_id))
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    # -- claims -------------------------------------------------------------------------------

    async def claims(self, vendor_id: str) -> list[Claim]:
        """A vendor's claims, oldest first."""
        raw = await self.redis.hvals(self.keys.eligibility_claims(vendor_id))
        return in_order(Claim.from_json(v) for v in raw)

    async def read_claims(self, vendor_id: str) -> ClaimsRead | None:
        """The vendor's claims and their version (``None``: no such vendor)."""
        # The version first: a change between the two reads makes the version stale, never the
        # claims older than it, so a write checked against it cannot lose that change.
        version = await self.redis.hget(self.keys.vendor(vendor_id), "claims_version")
        if version is None:
            return None
        raw = await self.redis.hgetall(self.keys.eligibility_claims(vendor_id))
        claims = {k.decode(): Claim.from_json(v) for k, v in raw.items()}
        return ClaimsRead(version.decode(), claims)

    async def write_claim(
        self,
        vendor_id: str,
        version: str,
        claim: Claim,
        *,
        was: ClaimStatus | None = None,
        eligibility: Eligibility | None = None,
        event: OutboxEvent | None = None,
    ) -> str:
        """Write a new claim (``was`` None) or a decided one (``was`` its status before), with
        the vendor's eligibility and the event of a decision; ``ok``, ``retry`` if the claims
        changed since ``version`` was read, or ``vendor_not_found``."""
        k = self.keys
        keys = [
            k.vendor(vendor_id),
            k.eligibility_claims(vendor_id),
            k.claims_in_status((was or claim.status).value),
            k.claims_in_status(claim.status.value),
            k.outbox(),
        ]
        inputs: dict[str, object] = {
            "version": version,
            "claim_id": claim.id,
            "claim": claim.to_json(),
            "member": _member(vendor_id, claim.id),
            "score": repr(claim.entered_status_at.timestamp()),
        }
        if eligibility is not None:
            inputs["fields"] = eligibility_fields(eligibility)
        if event is not None:
            inputs["event"] = event.fields()
        outcome: bytes = await self._write_claim(keys=keys, args=[as_json(inputs)])
        return outcome.decode()

    async def queue(
        self, status: ClaimStatus, *, limit: int, offset: int, oldest_first: bool
    ) -> tuple[int, list[tuple[str, Claim]]]:
        """One page of every vendor's claims in ``status``: the total, (vendor id, claim)s."""
        key = self.keys.claims_in_status(status.value)
        total = int(await self.redis.zcard(key))
        end = offset + limit - 1
        members = await (
            self.redis.zrange(key, offset, end)
            if oldest_first
            else self.redis.zrevrange(key, offset, end)
        )
        pairs = [m.decode().split("|", 1) for m in members]
        if not pairs:
            return total, []
        pipe = self.redis.pipeline(transaction=False)
        for vendor_id, claim_id in pairs:
            pipe.hget(self.keys.eligibility_claims(vendor_id), claim_id)
        values = await pipe.execute()
        page = [
            (vendor_id, Claim.from_json(value))
            for (vendor_id, _), value in zip(pairs, values, strict=True)
            if value is not None
        ]
        return total, page

    async def names(self, vendor_ids: Iterable[str]) -> dict[str, str]:
        """The names of vendors (for staff checking their documents)."""
        ids = sorted(set(vendor_ids))
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for vendor_id in ids:
            pipe.hget(self.keys.vendor(vendor_id), "name")
        values = await pipe.execute()
        return {i: v.decode() for i, v in zip(ids, values, strict=True) if v is not None}

    async def adopt_typed_eligibility(self, now: datetime) -> int:
        """Turn the eligibility vendors typed before claims existed into pending claims, once;
        how many vendors. Idempotent and safe beside live traffic (run after upgrading)."""
        prefix = self.keys.vendor("")
        adopted = 0
        async for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            vendor_id = key.decode()[len(prefix) :]
            r = await self._fields(vendor_id)
            if r is None or "claims_version" in r or "id" not in r:
                continue
            typed = eligibility_from(r)
            claims = [
                Claim(id=_claim_id(), kind=kind, value=value, status=ClaimStatus.CLAIMED,
                      claimed_at=now)
                for kind, value in _stated(typed)
            ]  # fmt: skip
            inputs = {
                "vendor_id": vendor_id,
                "claims": [
                    {"id": c.id, "json": c.to_json(), "score": repr(now.timestamp())}
                    for c in claims
                ],
                "fields": {"claims_version": "0", **eligibility_fields(Eligibility())},
            }
            keys = [
                self.keys.vendor(vendor_id),
                self.keys.eligibility_claims(vendor_id),
                self.keys.claims_in_status(ClaimStatus.CLAIMED.value),
            ]
            adopted += int(await self._adopt(keys=keys, args=[as_json(inputs)]))
        return adopted


def _claim_id() -> str:
    return f"cl_{secrets.token_hex(8)}"


def _stated(eligibility: Eligibility) -> list[tuple[ClaimKind, str]]:
    """The claims that state ``eligibility`` (no limits: those are staff's to set)."""
    return stated_claims(
        eligibility.priority_group, eligibility.categories, eligibility.health_until
    )


def _seeded_claims(vendor: Vendor) -> list[Claim]:
    """Verified claims matching a vendor's eligibility as given."""
    typed = Eligibility(
        priority_group=vendor.priority_group,
        categories=dict.fromkeys(vendor.categories),
        health_until=vendor.health_certificate_expires,
    )
    at = vendor.created_at
    return [
        Claim(
            id=_claim_id(),
            kind=kind,
            value=value,
            status=ClaimStatus.VERIFIED,
            claimed_at=at,
            document_ref="seeded",
            decided_by=SEEDED_BY,
            decided_at=at,
            expires=date.fromisoformat(value) if kind is ClaimKind.HEALTH_CERTIFICATE else None,
        )
        for kind, value in _stated(typed)
    ]
