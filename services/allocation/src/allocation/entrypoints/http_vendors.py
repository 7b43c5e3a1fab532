"""Vendor registration (phone code first), login, own profile and own eligibility claims."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from allocation.config import VENDOR_TOKEN_AUDIENCE
from allocation.domain.errors import rejected
from allocation.entrypoints.deps import AllocationDep, ClientAddress, CurrentVendor
from allocation.entrypoints.vendor_schemas import (
    ClaimView,
    NewClaim,
    RegistrationCode,
    RegistrationView,
    TokenResponse,
    VendorProfile,
    VendorRegistration,
)
from allocation.service_layer.registrations import RegisterVendor
from contracts.events import ClaimKind
from stallkit.auth import Role, mint_token
from stallkit.openapi import problems

router = APIRouter(prefix="/v1", tags=["vendors"])
#: Served at the root: ``/.well-known/jwks.json``.
jwks_router = APIRouter(tags=["vendors"])

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a registration from here (or for this number) is taken.",
        "schema": {"type": "integer"},
    }
}
_LOGIN_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the limit that refused the login resets.",
        "schema": {"type": "integer"},
    }
}


def _problem(status_code: int, description: str, **more: Any) -> dict[int | str, Any]:
    response = problems(status_code)[status_code]
    return {status_code: {**response, "description": description, **more}}


@jwks_router.get("/.well-known/jwks.json")
async def vendor_token_keys(
    allocation: AllocationDep, response: Response
) -> dict[str, list[dict[str, str]]]:
    """JWKS (RFC 7517) with the public key that verifies the vendor tokens allocation issues."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return allocation.settings.vendor_token_key().jwks()


@router.post(
    "/vendors",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_problem(409, "An account holds this identity number (`identity_taken`)."),
        **_problem(
            429,
            "Too many registrations from this address or for this number "
            "(`too_many_registrations`); `Retry-After` says when to try again.",
            headers=_RETRY_AFTER,
        ),
        **_problem(503, "The SMS could not be sent (`sms_unavailable`)."),
    },
)
async def register_vendor(
    body: VendorRegistration, address: ClientAddress, allocation: AllocationDep
) -> RegistrationView:
    """Start a registration: a 6-digit code is texted to the phone, to complete it with at
    ``POST /v1/vendors/verify``. The answer is the same for a number that is already
    registered (its owner is texted a notice instead, and that registration never completes).
    """
    started = await allocation.registrations.register(
        RegisterVendor(
            name=body.name,
            phone=body.phone,
            password=body.password,
            identity_number=body.identity_number,
            priority_group=body.priority_group,
            categories=frozenset(body.categories),
            health_certificate_expires=body.health_certificate_expires,
            client_address=address,
        )
    )
    return RegistrationView(registration_id=started.registration_id, expires_in=started.expires_in)


@router.post(
    "/vendors/verify",
    status_code=status.HTTP_201_CREATED,
    responses={
        **_problem(
            404,
            "No such registration: never made, expired, voided by wrong codes or completed "
            "(`registration_not_found`).",
        ),
        **_problem(
            409,
            "Another account took the identity or the number meanwhile (`identity_taken`, "
            "`phone_taken`).",
        ),
        **_problem(
            422,
            "Invalid body (`validation_failed`), or a wrong code (`invalid_code`, with "
            "`attempts_left`; none left voids the registration).",
        ),
    },
)
async def complete_registration(body: RegistrationCode, allocation: AllocationDep) -> VendorProfile:
    """Complete a registration with the texted code: the account exists from now on. Its
    claims (priority group, categories, health certificate) count once staff verify them."""
    vendor, claims = await allocation.registrations.complete(body.registration_id, body.code)
    return VendorProfile.of(vendor, 0, allocation.clock.now(), claims)


@router.post(
    "/auth/token",
    responses={
        401: {"description": "Wrong phone number or password (`invalid_credentials`)."},
        **_problem(
            429,
            "Too many attempts (`too_many_attempts`): for this number from this address, from "
            "this address, or for this number from addresses it never logged in from; "
            "`Retry-After` says when to try again.",
            headers=_LOGIN_RETRY_AFTER,
        ),
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    address: ClientAddress,
    allocation: AllocationDep,
) -> TokenResponse:
    """OAuth2 password flow: phone number as username, password → bearer token."""
    if len(form.username) > 32 or len(form.password) > 128:
        raise rejected("invalid_credentials")
    vendor_id = await allocation.vendor_service.authenticate(
        form.username.strip(), form.password, address
    )
    ttl = allocation.settings.jwt_ttl_seconds
    token = mint_token(
        allocation.settings.vendor_token_key(),
        sub=vendor_id,
        role=Role.VENDOR,
        now=allocation.clock.now(),
        ttl_seconds=ttl,
        audience=VENDOR_TOKEN_AUDIENCE,
    )
    return TokenResponse(access_token=token, expires_in=ttl)


@router.get("/vendors/me", responses=problems(404))
async def my_profile(principal: CurrentVendor, allocation: AllocationDep) -> VendorProfile:
    """The caller's profile: verified eligibility, every claim with its status (and the reason
    of a rejection), no-shows in the period and any booking suspension."""
    vendor = await allocation.vendors.get(principal.sub)
    if vendor is None:
        raise rejected("vendor_not_found")
    now = allocation.clock.now()
    since = now.timestamp() - allocation.policy.no_show_period_seconds
    no_shows = await allocation.ledger.no_shows_since(vendor.id, since)
    claims = await allocation.vendors.claims(vendor.id)
    return VendorProfile.of(vendor, no_shows, now, claims)


@router.get("/vendors/me/claims")
async def my_claims(principal: CurrentVendor, allocation: AllocationDep) -> list[ClaimView]:
    """The caller's eligibility claims, oldest first, each with its status (and the reason of
    a rejection)."""
    return [ClaimView.of(c) for c in await allocation.vendors.claims(principal.sub)]


@router.post(
    "/vendors/me/claims",
    status_code=status.HTTP_201_CREATED,
    responses={
        **problems(404),
        **_problem(
            409,
            "The same claim waits already (`claim_pending`), or the vendor has too many "
            "(`too_many_claims`).",
        ),
    },
)
async def add_my_claim(
    body: Annotated[NewClaim, Body(discriminator="kind")],
    principal: CurrentVendor,
    allocation: AllocationDep,
) -> ClaimView:
    """State one more eligibility claim (a priority group, a category, a renewed health
    certificate); it counts once staff verify it."""
    value = body.value.isoformat() if isinstance(body.value, date) else str(body.value)
    claim = await allocation.eligibility.add(principal.sub, ClaimKind(body.kind), value)
    return ClaimView.of(claim)
