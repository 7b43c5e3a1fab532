"""Staff verify vendors' eligibility claims (district staff of any district, or an admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from allocation.entrypoints.deps import AllocationDep, CurrentVerifier
from allocation.entrypoints.vendor_schemas import (
    ClaimDecision,
    ClaimId,
    ClaimPage,
    ClaimView,
    EligibilityView,
    QueuedClaimView,
    VendorClaimsView,
    VendorId,
    VerifyClaim,
    mask,
)
from allocation.service_layer.eligibility import DecideClaim, VendorClaims
from contracts.events import ClaimStatus
from stallkit.openapi import problems

router = APIRouter(prefix="/v1", tags=["eligibility"])


def _view(found: VendorClaims) -> VendorClaimsView:
    return VendorClaimsView(
        vendor_id=found.vendor.id,
        name=found.vendor.name,
        phone_masked=mask(found.vendor.phone),
        eligibility=EligibilityView.of(found.eligibility),
        claims=[ClaimView.of(c) for c in found.claims],
    )


@router.get("/claims")
async def claims_queue(
    _: CurrentVerifier,
    allocation: AllocationDep,
    status: ClaimStatus = ClaimStatus.CLAIMED,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ClaimPage:
    """Every vendor's claims in a status: pending ones (the work queue) oldest first, decided
    ones newest first."""
    total, page = await allocation.eligibility.queue(status, limit=limit, offset=offset)
    after = offset + len(page)
    return ClaimPage(
        items=[
            QueuedClaimView(
                **ClaimView.of(q.claim).model_dump(),
                vendor_id=q.vendor_id,
                vendor_name=q.vendor_name,
            )
            for q in page
        ],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=after if after < total else None,
    )


@router.get("/vendors/{vendor_id}/claims")
async def vendor_claims(
    vendor_id: Annotated[VendorId, Path()], _: CurrentVerifier, allocation: AllocationDep
) -> VendorClaimsView:
    """A vendor's claims, and what counts for them today."""
    return _view(await allocation.eligibility.of(vendor_id))


@router.post(
    "/vendors/{vendor_id}/claims/{claim_id}/decision",
    responses={
        **problems(404),
        409: {
            "description": (
                "The claim's status does not allow the decision (`illegal_claim_transition`: "
                "a claim is decided once; only a verified one can be rejected later, revoking "
                "it), or it changed meanwhile (`claims_changed`)."
            )
        },
        422: {
            "description": (
                "Invalid body (`validation_failed`), or a verification that would have expired "
                "already (`date_in_past`)."
            )
        },
    },
)
async def decide_claim(
    vendor_id: Annotated[VendorId, Path()],
    claim_id: Annotated[ClaimId, Path()],
    body: Annotated[ClaimDecision, Body(discriminator="decision")],
    principal: CurrentVerifier,
    allocation: AllocationDep,
) -> VendorClaimsView:
    """Verify a claim (with the document checked and an optional expiry), reject it with a
    reason the vendor sees, or revoke a verified one (reject it). Publishes
    ``vendor.eligibility.changed``."""
    if isinstance(body, VerifyClaim):
        expires, reason = body.expires, None
    else:
        expires, reason = None, body.reason
    decided = await allocation.eligibility.decide(
        DecideClaim(
            vendor_id=vendor_id,
            claim_id=claim_id,
            decision=ClaimStatus(body.decision),
            decided_by=principal.sub,
            document_ref=body.document_ref,
            expires=expires,
            reason=reason,
        )
    )
    return _view(decided)
