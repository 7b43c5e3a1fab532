"""Vendor registration, login and own profile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from allocation.config import VENDOR_TOKEN_AUDIENCE
from allocation.domain.errors import rejected
from allocation.entrypoints.deps import AllocationDep, CurrentVendor
from allocation.entrypoints.schemas import TokenResponse, VendorProfile, VendorRegistration
from allocation.service_layer.vendors import RegisterVendor
from stallkit.auth import Role, mint_token
from stallkit.openapi import problems

router = APIRouter(prefix="/v1", tags=["vendors"])
#: Served at the root: ``/.well-known/jwks.json``.
jwks_router = APIRouter(tags=["vendors"])


@jwks_router.get("/.well-known/jwks.json")
async def vendor_token_keys(
    allocation: AllocationDep, response: Response
) -> dict[str, list[dict[str, str]]]:
    """JWKS (RFC 7517) with the public key that verifies the vendor tokens allocation issues."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return allocation.settings.vendor_token_key().jwks()


@router.post("/vendors", status_code=status.HTTP_201_CREATED, responses=problems(409))
async def register_vendor(body: VendorRegistration, allocation: AllocationDep) -> VendorProfile:
    """Register a vendor (phone numbers are unique)."""
    vendor = await allocation.vendor_service.register(
        RegisterVendor(
            name=body.name,
            phone=body.phone,
            password=body.password,
            priority_group=body.priority_group,
            categories=frozenset(body.categories),
            health_certificate_expires=body.health_certificate_expires,
        )
    )
    return VendorProfile.of(vendor, 0, allocation.clock.now())


@router.post(
    "/auth/token",
    responses={
        401: {"description": "Wrong phone number or password (`invalid_credentials`)."},
        **problems(429),
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], allocation: AllocationDep
) -> TokenResponse:
    """OAuth2 password flow: phone number as username, password → bearer token."""
    if len(form.username) > 32 or len(form.password) > 128:
        raise rejected("invalid_credentials")
    vendor_id = await allocation.vendor_service.authenticate(form.username.strip(), form.password)
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
    """The caller's profile, no-shows in the period and any booking suspension."""
    vendor = await allocation.vendors.get(principal.sub)
    if vendor is None:
        raise rejected("vendor_not_found")
    now = allocation.clock.now()
    since = now.timestamp() - allocation.policy.no_show_period_seconds
    no_shows = await allocation.ledger.no_shows_since(vendor.id, since)
    return VendorProfile.of(vendor, no_shows, now)
