"""Bearer tokens (JWT, HS256) shared by all services: sub, role and, for staff, district."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stallkit.clock import Clock
from stallkit.problems import ProblemError

ALGORITHM = "HS256"
ISSUER = "zhuhai-markets"


class Role(StrEnum):
    """Who the token's holder is."""

    VENDOR = "vendor"
    PATROL = "patrol"
    DISTRICT = "district"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    sub: str
    role: Role
    district: str | None = None


def mint_token(
    secret: str,
    *,
    sub: str,
    role: Role,
    now: datetime,
    ttl_seconds: int,
    district: str | None = None,
) -> str:
    """Sign a token for ``sub`` in ``role`` that expires after ``ttl_seconds``."""
    claims: dict[str, object] = {
        "sub": sub,
        "role": role.value,
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    if district:
        claims["district"] = district
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, *, now: datetime) -> Principal:
    """Check signature, issuer, expiry (against the service clock) and role."""
    try:
        # Time claims are checked against the service clock below, which may be offset.
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["sub", "role", "exp", "iss"],
            },
        )
    except jwt.PyJWTError as exc:
        raise ProblemError("unauthorized", 401, "invalid token") from exc
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now.timestamp():
        raise ProblemError("token_expired", 401)
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise ProblemError("unauthorized", 401, "unknown role") from exc
    district = claims.get("district")
    return Principal(
        sub=str(claims["sub"]), role=role, district=district if isinstance(district, str) else None
    )


class TokenVerifier:
    """Verifies tokens, remembering recent good ones so a vendor's repeated calls skip the HMAC.

    Expiry is still checked on every call against the service clock.
    """

    def __init__(self, secret: str, clock: Clock, max_entries: int = 10_000):
        self.secret = secret
        self.clock = clock
        self.max_entries = max_entries
        self._known: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """The principal of a valid, unexpired token, or a 401 problem."""
        now = self.clock.now()
        known = self._known.get(token)
        if known is not None:
            principal, expires = known
            if expires > now.timestamp():
                return principal
            del self._known[token]
            raise ProblemError("token_expired", 401)
        principal = verify_token(self.secret, token, now=now)
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        self._known[token] = (principal, float(exp))
        if len(self._known) > self.max_entries:
            self._known.popitem(last=False)
        return principal


_bearer = HTTPBearer(auto_error=False)


def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError("unauthorized", 401, "missing bearer token")
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials.credentials)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the caller, from the Authorization header."""
    return _principal(request, credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role) -> params.Depends:
    """FastAPI dependency factory: the caller, who must hold one of ``roles``."""

    async def _check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal = _principal(request, credentials)
        if principal.role not in roles:
            raise ProblemError("forbidden", 403)
        return principal

    dependency: params.Depends = Depends(_check)
    return dependency
