"""Bearer tokens: EdDSA (Ed25519) JWTs carrying sub, role, district, iss, aud and a ``kid``.

Only the issuers hold private keys (allocation signs vendor tokens, ``stallctl`` staff tokens);
every service verifies with the public keys of its JWKS (:class:`stallkit.keys.TokenKeys`),
and takes a token only if its ``aud`` names the service.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import jwt
from fastapi import APIRouter, Depends, FastAPI, Request, params
from pydantic import BaseModel, Field

from stallkit.clock import Clock
from stallkit.keys import ALGORITHM, Issuer, SigningKey, TrustedKey
from stallkit.problems import ProblemError, register_messages

if TYPE_CHECKING:
    from stallkit.settings import CommonSettings

log = logging.getLogger(__name__)

#: Every service; a token's ``aud`` lists the ones it is for.
AUDIENCES: tuple[str, ...] = ("allocation", "windows", "inspection", "reporting")
#: How far in the future ``iat`` / ``nbf`` may be on the service clock (clock skew).
LEEWAY_SECONDS = 60.0

register_messages(
    {
        "wrong_audience": ("该令牌不适用于本服务", "This token is not meant for this service"),
        "token_not_yet_valid": ("令牌尚未生效", "Token not valid yet"),
    }
)


class Role(StrEnum):
    """Who the token's holder is."""

    VENDOR = "vendor"
    PATROL = "patrol"
    DISTRICT = "district"
    ADMIN = "admin"


_ROLE_NAMES = frozenset(r.value for r in Role)
STAFF_ROLES = frozenset({Role.PATROL, Role.DISTRICT, Role.ADMIN})
#: The roles each issuer may grant: allocation's key cannot make an administrator.
ISSUER_ROLES: Mapping[Issuer, frozenset[Role]] = {
    Issuer.ALLOCATION: frozenset({Role.VENDOR}),
    Issuer.STAFF: STAFF_ROLES,
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    sub: str
    role: Role
    district: str | None = None


def mint_token(
    key: SigningKey,
    *,
    sub: str,
    role: Role,
    now: datetime,
    ttl_seconds: int,
    audience: Sequence[str],
    district: str | None = None,
) -> str:
    """Sign a token for ``sub`` in ``role``, for the ``audience`` services, ``ttl_seconds`` long."""
    if role not in ISSUER_ROLES[key.issuer]:
        raise ValueError(f"the {key.issuer.value} key does not issue {role.value} tokens")
    if not sub.strip() or not audience:
        raise ValueError("a token needs a subject and at least one audience")
    claims: dict[str, object] = {
        "sub": sub,
        "role": role.value,
        "iss": key.issuer.uri,
        "aud": list(audience),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    if district:
        claims["district"] = district
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


@dataclass(frozen=True)
class CheckedToken:
    """A token whose signature and claims hold; its times still need the clock."""

    principal: Principal
    not_before: float
    expires: float


def _refused(detail: str) -> ProblemError:
    return ProblemError("unauthorized", 401, detail)


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refused(f"{name} is not a number")
    return float(value)


# Checks, in order: header (alg, known kid), signature, issuer of that key, audience, subject,
# role (one the key's issuer grants), district, and the time claims' presence and type.
_NO_CLAIM_CHECKS = {
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def check_token(token: str, keys: Mapping[str, TrustedKey], audience: str) -> CheckedToken:
    """Everything about a token except the clock; a 401 problem if anything is wrong."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _refused("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise _refused("signature algorithm not accepted")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise _refused("unknown signing key")
    try:
        claims = jwt.decode(token, key.public, algorithms=[ALGORITHM], options=_NO_CLAIM_CHECKS)  # type: ignore[arg-type]
    except jwt.PyJWTError as exc:
        raise _refused("invalid signature") from exc
    if claims.get("iss") != key.issuer.uri:
        raise _refused("issuer does not match the signing key")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise _refused("malformed audience")
    if audience not in audiences:
        raise ProblemError("wrong_audience", 401, f"the token is not for {audience}")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise _refused("no subject")
    role_claim = claims.get("role")
    if not isinstance(role_claim, str) or role_claim not in _ROLE_NAMES:
        raise _refused("missing or unknown role")
    role = Role(role_claim)
    if role not in ISSUER_ROLES[key.issuer]:
        raise _refused(f"{key.issuer.value} does not issue {role.value} tokens")
    district = claims.get("district")
    if "district" in claims and (not isinstance(district, str) or not district.strip()):
        raise _refused("district is not a string")
    expires, issued = _time_claim(claims, "exp"), _time_claim(claims, "iat")
    if expires is None or issued is None:
        raise _refused("exp and iat are required")
    not_before = max(issued, _time_claim(claims, "nbf") or issued)
    return CheckedToken(Principal(sub, role, district), not_before, expires)


def check_time(checked: CheckedToken, now: float, leeway: float = LEEWAY_SECONDS) -> None:
    """Expiry (strict) and ``iat``/``nbf`` (within ``leeway``) against the service clock."""
    if checked.expires <= now:
        raise ProblemError("token_expired", 401)
    if checked.not_before > now + leeway:
        raise ProblemError("token_not_yet_valid", 401)


def verify_token(
    token: str, keys: Mapping[str, TrustedKey], *, audience: str, now: datetime
) -> Principal:
    """The principal of a valid token for ``audience`` at ``now``, or a 401 problem."""
    checked = check_token(token, keys, audience)
    check_time(checked, now.timestamp())
    return checked.principal


class TokenVerifier:
    """Verifies tokens for one service, remembering checked ones (a vendor's repeated calls
    skip the signature check).

    What is remembered is what cannot change for the same token text and key set: signature,
    key, issuer, audience, subject, role and district. The times are checked on every call
    against the service clock, which may be offset or moved.
    """

    def __init__(
        self,
        keys: Mapping[str, TrustedKey],
        clock: Clock,
        *,
        audience: str,
        max_entries: int = 10_000,
    ):
        self.keys = keys
        self.clock = clock
        self.audience = audience
        self.max_entries = max_entries
        self._known: OrderedDict[str, CheckedToken] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """The principal of a valid, current token for this service, or a 401 problem."""
        checked = self._known.get(token)
        if checked is None:
            checked = check_token(token, self.keys, self.audience)
            self._known[token] = checked
            if len(self._known) > self.max_entries:
                self._known.popitem(last=False)
        try:
            check_time(checked, self.clock.timestamp())
        except ProblemError as exc:
            if exc.code == "token_expired":
                self._known.pop(token, None)
            raise
        return checked.principal


def install_token_verifier(app: FastAPI, settings: CommonSettings, clock: Clock) -> None:
    """Give ``app`` the verifier of its settings' JWKS and audience (warn of a retired secret)."""
    from stallkit.settings import RETIRED_JWT_SECRET_MESSAGE

    if settings.retired_jwt_variable_set:
        log.warning("%s: ignoring it", RETIRED_JWT_SECRET_MESSAGE)
    app.state.token_verifier = TokenVerifier(
        settings.token_keys(), clock, audience=settings.token_audience
    )


#: The dependencies that read the bearer token: ``stallkit.openapi`` documents the routes that
#: use one with the ``HTTPBearer`` security scheme, 401 and (a role check) 403.
BEARER_DEPENDENCIES: set[Any] = set()


def _principal(request: Request) -> Principal:
    """The caller of a request: its ``Authorization: Bearer`` token, verified.

    Read straight from the header, not through FastAPI's ``HTTPBearer`` dependency: every
    request of every service passes here, and FastAPI re-derives the cache keys of each
    sub-dependency on every call (a fifth of a booking's time was dependency solving).
    """
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if not credentials or scheme.lower() != "bearer":
        raise ProblemError("unauthorized", 401, "missing bearer token")
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials)


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, from the Authorization header."""
    return _principal(request)


BEARER_DEPENDENCIES.add(current_principal)
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def caller_with_role(request: Request, *roles: Role) -> Principal:
    """The caller of a request, who must hold one of ``roles`` (401 or 403 problems otherwise):
    what :func:`require_role` checks, for a route's fast path (:mod:`stallkit.fastpath`)."""
    principal = _principal(request)
    if principal.role not in roles:
        raise ProblemError("forbidden", 403)
    return principal


def require_role(*roles: Role) -> params.Depends:
    """FastAPI dependency factory: the caller, who must hold one of ``roles``."""

    async def _check(request: Request) -> Principal:
        return caller_with_role(request, *roles)

    BEARER_DEPENDENCIES.add(_check)
    dependency: params.Depends = Depends(_check)
    return dependency


class WhoAmI(BaseModel):
    """Who this service takes the caller for."""

    sub: str = Field(description="Subject: vendor or staff id.", examples=["p001"])
    role: Role = Field(description="Role the token grants.", examples=["patrol"])
    district: str | None = Field(description="District of a staff member.", examples=["doumen"])
    service: str = Field(description="The service that accepted the token.", examples=["windows"])


def whoami_router(service: str) -> APIRouter:
    """``GET /v1/auth/whoami``: any service tells whether it accepts the caller's token."""
    router = APIRouter(prefix="/v1/auth", tags=["auth"])

    @router.get("/whoami")
    async def whoami(principal: CurrentPrincipal) -> WhoAmI:
        """The caller as this service sees it (401 if it does not accept the token)."""
        return WhoAmI(
            sub=principal.sub, role=principal.role, district=principal.district, service=service
        )

    return router
