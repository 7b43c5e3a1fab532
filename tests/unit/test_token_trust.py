"""Each service trusts only what it should: public keys only, its own audience, no forgeries.

The apps are built as ``uvicorn`` would build them and called in-process (no lifespan, so no
broker or Redis connection is made): the token check happens before any of that is needed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from allocation.app import create_app as allocation_app
from allocation.config import DEV_STALL_CODE_SEED_B64, DEV_VENDOR_TOKEN_SEED_B64
from inspection.app import create_app as inspection_app
from inspection.config import InspectionSettings
from reporting.app import create_app as reporting_app
from reporting.config import ReportingSettings
from stallctl.tokens import DEV_STAFF_SEED_B64
from stallkit import devkeys
from stallkit.auth import AUDIENCES, Role
from stallkit.keys import Issuer, SigningKey, new_seed, raw_public_key
from stallkit.settings import CommonSettings
from stalltest.tokens import RETIRED_DEV_JWT_SECRET, bearer, dev_key, dev_token, fresh_key, jwks_of
from windows.app import create_app as windows_app
from windows.config import WindowsSettings

pytestmark = pytest.mark.unit


# --- the development keys -----------------------------------------------------------------------


def _public_b64(seed_b64: str) -> str:
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))
    return base64.b64encode(raw_public_key(private.public_key())).decode()


def test_each_dev_public_literal_is_the_public_key_of_its_seed() -> None:
    assert _public_b64(DEV_STALL_CODE_SEED_B64) == devkeys.DEV_STALL_CODE_PUBLIC_KEY_B64
    vendor = SigningKey.from_seed(Issuer.ALLOCATION, DEV_VENDOR_TOKEN_SEED_B64).public_jwk()
    staff = SigningKey.from_seed(Issuer.STAFF, DEV_STAFF_SEED_B64).public_jwk()
    assert (vendor["kid"], vendor["x"]) == (
        devkeys.DEV_VENDOR_TOKEN_KID,
        devkeys.DEV_VENDOR_TOKEN_X,
    )
    assert (staff["kid"], staff["x"]) == (devkeys.DEV_STAFF_TOKEN_KID, devkeys.DEV_STAFF_TOKEN_X)
    assert devkeys.dev_token_jwks() == {"keys": [vendor, staff]}


# --- verifying services hold no signing key ---------------------------------------------------

PRIVATE_SEEDS = {
    "ALLOCATION_TOKEN_SIGNING_KEY": new_seed(),
    "ALLOCATION_STALL_CODE_SIGNING_KEY": new_seed(),
    "STALL_STAFF_SIGNING_KEY": new_seed(),
}
PROD_ENV = {
    "STALL_MODE": "prod",
    "STALL_TOKEN_JWKS": jwks_of(
        SigningKey.from_seed(Issuer.ALLOCATION, PRIVATE_SEEDS["ALLOCATION_TOKEN_SIGNING_KEY"]),
        SigningKey.from_seed(Issuer.STAFF, PRIVATE_SEEDS["STALL_STAFF_SIGNING_KEY"]),
    ),
    "INSPECTION_STALL_CODE_PUBLIC_KEY": _public_b64(
        PRIVATE_SEEDS["ALLOCATION_STALL_CODE_SIGNING_KEY"]
    ),
    "INSPECTION_SUBJECT_SALT": "a-production-subject-salt-0123456789",
    **PRIVATE_SEEDS,  # one .env for all: a verifying service must still not pick them up
}
DEV_SEEDS = (DEV_STALL_CODE_SEED_B64, DEV_VENDOR_TOKEN_SEED_B64, DEV_STAFF_SEED_B64)


def _spellings(seed_b64: str) -> set[str]:
    raw = base64.b64decode(seed_b64)
    return {seed_b64, base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex(), str(raw)}


def _strings(value: Any) -> Iterator[str]:
    """Every string in a settings value, JSON documents (the JWKS) opened up."""
    if isinstance(value, str):
        yield value
        try:
            parsed = json.loads(value)
        except ValueError:
            return
        if isinstance(parsed, dict | list):
            yield from _strings(parsed)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield str(value)


def _holds_private_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32 and text not in _public_strings()
    except (binascii.Error, ValueError):
        return False


def _public_strings() -> set[str]:
    return {PROD_ENV["INSPECTION_STALL_CODE_PUBLIC_KEY"], devkeys.DEV_STALL_CODE_PUBLIC_KEY_B64}


@pytest.mark.parametrize("settings_class", [WindowsSettings, InspectionSettings, ReportingSettings])
@pytest.mark.parametrize("mode", ["dev", "prod"])
def test_verifying_services_hold_no_signing_key(
    settings_class: type[CommonSettings], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PRIVATE_SEEDS.items():
        monkeypatch.setenv(name, value)
    if mode == "prod":
        for name, value in PROD_ENV.items():
            monkeypatch.setenv(name, value)
    settings = settings_class()
    assert settings.model_dump()["mode"] == mode
    names = set(type(settings).model_fields)
    assert not {n for n in names if any(w in n for w in ("signing", "private", "seed", "secret"))}
    values = list(_strings({name: getattr(settings, name) for name in names}))
    forbidden = set().union(*(_spellings(s) for s in (*PRIVATE_SEEDS.values(), *DEV_SEEDS)))
    assert not forbidden & set(values)
    assert not [v for v in values if _holds_private_key(v)]
    assert "d" not in {k for jwk in settings.token_keys().jwks()["keys"] for k in jwk}


# --- every service refuses what it must not trust ---------------------------------------------

APPS: dict[str, Callable[[], Any]] = {
    "allocation": lambda: allocation_app(),
    "windows": lambda: windows_app(configure_logs=False),
    "inspection": lambda: inspection_app(configure_logs=False),
    "reporting": lambda: reporting_app(configure_logs=False),
}


def _forged_same_kid() -> str:
    impostor = SigningKey(Issuer.STAFF, fresh_key(Issuer.STAFF).private, dev_key(Role.ADMIN).kid)
    now = datetime.now(UTC)
    claims = {
        "sub": "admin", "role": "admin", "iss": Issuer.STAFF.uri, "aud": list(AUDIENCES),
        "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 600,
    }  # fmt: skip
    return jwt.encode(claims, impostor.private, algorithm="EdDSA", headers={"kid": impostor.kid})


def _retired_hs256() -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": "admin",
        "role": "admin",
        "iss": "zhuhai-markets",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, RETIRED_DEV_JWT_SECRET, algorithm="HS256")


def bad_tokens(service: str) -> dict[str, tuple[str, str]]:
    """Tokens ``service`` must refuse, and the code of each refusal."""
    others = [a for a in AUDIENCES if a != service]
    future = datetime.now(UTC) + timedelta(minutes=10)
    return {
        "other key, same kid": (_forged_same_kid(), "unauthorized"),
        "HS256, old dev secret": (_retired_hs256(), "unauthorized"),
        "unknown key": (_with_claims(key=fresh_key(Issuer.STAFF)), "unauthorized"),
        "another audience": (dev_token(Role.ADMIN, "admin", audience=others), "wrong_audience"),
        "issued in the future": (dev_token(Role.ADMIN, "admin", now=future), "token_not_yet_valid"),
        "empty subject": (_with_claims(sub=" "), "unauthorized"),
    }  # fmt: skip


def _with_claims(key: SigningKey | None = None, **changes: Any) -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "admin", "role": "admin", "iss": Issuer.STAFF.uri, "aud": list(AUDIENCES),
              "iat": now, "exp": now + 600, **changes}  # fmt: skip
    key = key or dev_key(Role.ADMIN)
    return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})


@pytest.mark.parametrize("service", sorted(APPS))
async def test_every_service_refuses_forged_foreign_and_invalid_tokens(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("STALL_MODE", "STALL_TOKEN_JWKS", "STALL_TOKEN_JWKS_FILE", "STALL_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    transport = httpx.ASGITransport(app=APPS[service]())
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
        good = await client.get("/v1/auth/whoami", headers=bearer(dev_token(Role.ADMIN, "ops")))
        assert good.status_code == 200, good.text
        assert good.json() == {"sub": "ops", "role": "admin", "district": None, "service": service}
        for case, (token, code) in bad_tokens(service).items():
            response = await client.get("/v1/auth/whoami", headers=bearer(token))
            assert response.status_code == 401, (case, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == code, case
        vendor = await client.get("/v1/auth/whoami", headers=bearer(dev_token(Role.VENDOR, "vd_1")))
        # a vendor's login token is for allocation and inspection (the vendor's own warnings)
        vendor_services = ("allocation", "inspection")
        assert vendor.status_code == (200 if service in vendor_services else 401), vendor.text
