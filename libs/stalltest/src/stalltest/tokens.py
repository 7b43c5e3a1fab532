"""Tokens for tests, signed by the development keys that services trust in development mode.

Vendor tokens are signed with allocation's development key, staff tokens with stallctl's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from allocation.config import DEV_VENDOR_TOKEN_SEED_B64, VENDOR_TOKEN_AUDIENCE
from stallctl.tokens import DEV_STAFF_SEED_B64
from stallkit.auth import AUDIENCES, Role, mint_token
from stallkit.keys import Issuer, SigningKey, new_seed

#: The HS256 secret every service shared before tokens were signed with Ed25519 keys.
RETIRED_DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"


def dev_key(role: Role) -> SigningKey:
    """The development key that issues ``role``'s tokens."""
    if role is Role.VENDOR:
        return SigningKey.from_seed(Issuer.ALLOCATION, DEV_VENDOR_TOKEN_SEED_B64)
    return SigningKey.from_seed(Issuer.STAFF, DEV_STAFF_SEED_B64)


def dev_token(
    role: Role,
    sub: str,
    *,
    district: str | None = None,
    audience: Sequence[str] | None = None,
    now: datetime | None = None,
    ttl_seconds: int = 3600,
    issued_at: datetime | None = None,
) -> str:
    """A token as its real issuer would make it with the development key.

    It expires ``ttl_seconds`` after ``now`` (default: the real time; pass the service clock's),
    was issued at ``issued_at`` (default ``now``; earlier if the test moves the clock back), and
    is for the issuer's usual audience unless ``audience`` is given.
    """
    return _token(dev_key(role), role, sub, district, audience, now, ttl_seconds, issued_at)


def forged_token(role: Role, sub: str, **options: Any) -> str:
    """Like :func:`dev_token`, but signed by a stranger's key under the development ``kid``."""
    stranger = SigningKey(dev_key(role).issuer, fresh_key(Issuer.STAFF).private, dev_key(role).kid)
    return _token(
        stranger,
        role,
        sub,
        options.get("district"),
        options.get("audience"),
        options.get("now"),
        options.get("ttl_seconds", 3600),
        options.get("issued_at"),
    )


def _token(
    key: SigningKey,
    role: Role,
    sub: str,
    district: str | None,
    audience: Sequence[str] | None,
    now: datetime | None,
    ttl_seconds: int,
    issued_at: datetime | None,
) -> str:
    now = now or datetime.now(UTC)
    issued = issued_at or now
    if audience is None:
        audience = VENDOR_TOKEN_AUDIENCE if role is Role.VENDOR else AUDIENCES
    lifetime = int((now - issued).total_seconds()) + ttl_seconds
    return mint_token(
        key,
        sub=sub,
        role=role,
        now=issued,
        ttl_seconds=lifetime,
        audience=audience,
        district=district,
    )


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def fresh_key(issuer: Issuer) -> SigningKey:
    """A new random key of ``issuer`` (a production-like key no development default knows)."""
    return SigningKey.from_seed(issuer, new_seed())


def jwks_of(*keys: SigningKey) -> str:
    """The JWKS (JSON) that trusts the public halves of ``keys``."""
    return json.dumps({"keys": [key.public_jwk() for key in keys]})
