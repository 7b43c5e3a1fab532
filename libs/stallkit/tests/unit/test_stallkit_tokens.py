"""Tokens: EdDSA signatures by the issuer's key, audience, issuer, times, claims; key sets."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from stallkit.auth import (
    AUDIENCES,
    Role,
    TokenVerifier,
    install_token_verifier,
    mint_token,
    verify_token,
)
from stallkit.clock import Clock
from stallkit.devkeys import DEV_STAFF_TOKEN_X, dev_token_jwks
from stallkit.keys import Issuer, SigningKey, TokenKeys, new_seed
from stallkit.problems import ProblemError
from stallkit.settings import CommonSettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
STAFF = SigningKey.from_seed(Issuer.STAFF, new_seed())
VENDORS = SigningKey.from_seed(Issuer.ALLOCATION, new_seed())
KEYS = TokenKeys.parse({"keys": [STAFF.public_jwk(), VENDORS.public_jwk()]})
RETIRED_SECRET = "dev-only-jwt-secret-change-me-0123456789"


def claims(**changes: Any) -> dict[str, Any]:
    """The claims of a good patrol token at NOW, with ``changes`` (None removes a claim)."""
    base: dict[str, Any] = {
        "sub": "p-1",
        "role": "patrol",
        "district": "doumen",
        "iss": Issuer.STAFF.uri,
        "aud": list(AUDIENCES),
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(key: SigningKey = STAFF, **changes: Any) -> str:
    return jwt.encode(claims(**changes), key.private, algorithm="EdDSA", headers={"kid": key.kid})


def refusal(token: str, audience: str = "windows", now: datetime = NOW) -> str:
    with pytest.raises(ProblemError) as refused:
        verify_token(token, KEYS, audience=audience, now=now)
    assert refused.value.status == 401
    return refused.value.code


def test_a_staff_token_round_trips_for_every_audience_it_names() -> None:
    token = mint_token(
        STAFF, sub="p-1", role=Role.PATROL, now=NOW, ttl_seconds=60, district="doumen",
        audience=["windows", "inspection"],
    )  # fmt: skip
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("EdDSA", STAFF.kid)
    for audience in ("windows", "inspection"):
        principal = verify_token(token, KEYS, audience=audience, now=NOW)
        assert (principal.sub, principal.role, principal.district) == ("p-1", "patrol", "doumen")
    assert refusal(token, audience="reporting") == "wrong_audience"
    assert refusal(token, now=NOW + timedelta(seconds=60)) == "token_expired"


def _other_key_same_kid() -> str:
    impostor = SigningKey(
        Issuer.STAFF, SigningKey.from_seed(Issuer.STAFF, new_seed()).private, STAFF.kid
    )
    return signed(impostor)


def _hs256_with_the_retired_secret() -> str:
    return jwt.encode(claims(), RETIRED_SECRET, algorithm="HS256", headers={"kid": STAFF.kid})


def _unsigned() -> str:
    return jwt.encode(claims(), None, algorithm="none", headers={"kid": STAFF.kid})


def _vendor_key_making_an_admin() -> str:
    return signed(VENDORS, role="admin", iss=Issuer.ALLOCATION.uri, district=None)


def _tampered() -> str:
    head, body, signature = signed().split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


FUTURE = int(NOW.timestamp()) + 120  # beyond the 60 s leeway
REFUSED: dict[str, tuple[Callable[[], str], str]] = {
    "other-key-same-kid": (_other_key_same_kid, "unauthorized"),
    "hs256-retired-secret": (_hs256_with_the_retired_secret, "unauthorized"),
    "alg-none": (_unsigned, "unauthorized"),
    "tampered-claims": (_tampered, "unauthorized"),
    "unknown-kid": (lambda: signed(SigningKey.from_seed(Issuer.STAFF, new_seed())), "unauthorized"),
    "vendor-key-admin": (_vendor_key_making_an_admin, "unauthorized"),
    "wrong-issuer-for-key": (lambda: signed(iss=Issuer.ALLOCATION.uri), "unauthorized"),
    "other-audience": (lambda: signed(aud=["allocation"]), "wrong_audience"),
    "no-audience": (lambda: signed(aud=None), "unauthorized"),
    "empty-sub": (lambda: signed(sub=""), "unauthorized"),
    "whitespace-sub": (lambda: signed(sub="   "), "unauthorized"),
    "no-sub": (lambda: signed(sub=None), "unauthorized"),
    "no-role": (lambda: signed(role=None), "unauthorized"),
    "unknown-role": (lambda: signed(role="mayor"), "unauthorized"),
    "role-not-a-string": (lambda: signed(role=["admin"]), "unauthorized"),
    "district-a-number": (lambda: signed(district=7), "unauthorized"),
    "district-a-list": (lambda: signed(district=["doumen"]), "unauthorized"),
    "future-iat": (lambda: signed(iat=FUTURE, exp=FUTURE + 600), "token_not_yet_valid"),
    "future-nbf": (lambda: signed(nbf=FUTURE), "token_not_yet_valid"),
    "no-iat": (lambda: signed(iat=None), "unauthorized"),
    "no-exp": (lambda: signed(exp=None), "unauthorized"),
    "exp-a-string": (lambda: signed(exp="tomorrow"), "unauthorized"),
    "expired": (lambda: signed(exp=int(NOW.timestamp())), "token_expired"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_token_is_refused_with_its_code(case: str) -> None:
    make, code = REFUSED[case]
    assert refusal(make()) == code


def test_skew_within_the_leeway_is_accepted_and_aud_may_be_one_string() -> None:
    soon = int(NOW.timestamp()) + 30
    assert verify_token(signed(iat=soon, nbf=soon), KEYS, audience="windows", now=NOW).sub == "p-1"
    assert verify_token(signed(aud="windows"), KEYS, audience="windows", now=NOW).sub == "p-1"


def test_issuers_mint_only_their_roles() -> None:
    with pytest.raises(ValueError, match="does not issue admin"):
        mint_token(VENDORS, sub="v", role=Role.ADMIN, now=NOW, ttl_seconds=60, audience=AUDIENCES)
    with pytest.raises(ValueError, match="does not issue vendor"):
        mint_token(STAFF, sub="v", role=Role.VENDOR, now=NOW, ttl_seconds=60, audience=AUDIENCES)


def test_the_cache_still_checks_the_times_on_every_call() -> None:
    clock = Clock(offset_seconds=NOW.timestamp() - Clock().timestamp())
    verifier = TokenVerifier(KEYS, clock, audience="windows")
    token = signed()
    assert verifier.verify(token).sub == "p-1"  # checked once, remembered
    clock.advance(-300)  # the service clock moves back before the token's iat
    with pytest.raises(ProblemError) as early:
        verifier.verify(token)
    assert early.value.code == "token_not_yet_valid"
    clock.advance(300 + 600)  # and on past its expiry
    with pytest.raises(ProblemError) as late:
        verifier.verify(token)
    assert late.value.code == "token_expired"
    other = TokenVerifier(
        KEYS, Clock(offset_seconds=clock.offset_seconds - 900), audience="reporting"
    )
    with pytest.raises(ProblemError) as elsewhere:
        other.verify(signed(aud=["windows"]))
    assert elsewhere.value.code == "wrong_audience"


# --- key sets ---------------------------------------------------------------------------------


def _jwk(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in (STAFF.public_jwk() | changes).items() if v is not None}


@pytest.mark.parametrize(
    ("jwks", "complaint"),
    [
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param({"keys": []}, "at least one key", id="empty"),
        pytest.param({"keys": [_jwk(d="c2VjcmV0")]}, "private key", id="private"),
        pytest.param({"keys": [_jwk(kty="RSA")]}, "not an Ed25519", id="rsa"),
        pytest.param({"keys": [_jwk(alg="HS256")]}, "EdDSA", id="alg"),
        pytest.param({"keys": [_jwk(kid="mine-1")]}, "starts with its issuer", id="kid"),
        pytest.param({"keys": [_jwk(kid=None)]}, "needs a kid", id="no-kid"),
        pytest.param({"keys": [_jwk(x="c2hvcnQ")]}, "32-byte", id="short-x"),
        pytest.param({"keys": [_jwk(), _jwk()]}, "twice", id="duplicate"),
    ],
)
def test_a_bad_jwks_is_refused(jwks: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        TokenKeys.parse(jwks if isinstance(jwks, str) else json.dumps(jwks))


# --- settings ---------------------------------------------------------------------------------

PROD_JWKS = json.dumps(KEYS.jwks())


def test_dev_mode_trusts_the_dev_public_keys_by_default() -> None:
    assert CommonSettings().token_keys().jwks() == dev_token_jwks()
    own = CommonSettings(token_jwks=PROD_JWKS).token_keys()
    assert set(own) == {STAFF.kid, VENDORS.kid}  # given keys replace the dev ones


def test_the_jwks_can_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(PROD_JWKS)
    settings = CommonSettings(mode="prod", token_jwks_file=path)
    assert set(settings.token_keys()) == {STAFF.kid, VENDORS.kid}
    with pytest.raises(ValidationError, match="not both"):
        CommonSettings(token_jwks_file=path, token_jwks=PROD_JWKS)
    with pytest.raises(ValidationError, match="cannot read"):
        CommonSettings(token_jwks_file=tmp_path / "missing.json")


def _dev_staff_x_spelled_differently() -> str:
    # The same 32 bytes with the unused low bits of the last character set.
    x = DEV_STAFF_TOKEN_X
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other = x[:-1] + alphabet[alphabet.index(x[-1]) | 1]
    assert other != x
    assert base64.urlsafe_b64decode(other + "=") == base64.urlsafe_b64decode(x + "=")
    return other


DEV_JWKS = json.dumps(dev_token_jwks())
RESPELLED_DEV_JWKS = json.dumps({"keys": [_jwk(x=_dev_staff_x_spelled_differently())]})


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        pytest.param({}, "STALL_TOKEN_JWKS", id="no-jwks"),
        pytest.param({"token_jwks": DEV_JWKS}, "development keys", id="dev-jwks"),
        pytest.param({"token_jwks": RESPELLED_DEV_JWKS}, "development keys", id="dev-respelled"),
        pytest.param({"clock_offset_seconds": 3600}, "STALL_CLOCK", id="offset"),
        pytest.param({"clock_speed": 60}, "STALL_CLOCK", id="speed"),
        pytest.param({"clock_anchor": 1.7e9}, "STALL_CLOCK", id="anchor"),
        pytest.param({"stall_jwt_secret": RETIRED_SECRET}, "STALL_JWT_SECRET", id="secret"),
    ],
)
def test_production_refuses_dev_keys_clock_tricks_and_the_retired_secret(
    overrides: dict[str, Any], complaint: str
) -> None:
    prod = {"mode": "prod", "token_jwks": PROD_JWKS} if overrides.keys() - {"token_jwks"} else {}
    with pytest.raises(ValidationError, match=complaint):
        CommonSettings.model_validate({"mode": "prod", **prod, **overrides})
    assert CommonSettings.model_validate(overrides).mode == "dev"  # development allows all of it
    assert CommonSettings(mode="prod", token_jwks=PROD_JWKS).mode == "prod"


def test_the_retired_secret_is_ignored_with_a_warning_in_dev(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STALL_JWT_SECRET", RETIRED_SECRET)
    settings = CommonSettings()
    assert RETIRED_SECRET not in repr(settings.model_dump()) + repr(settings)
    app = FastAPI()
    with caplog.at_level(logging.WARNING):
        install_token_verifier(app, settings, Clock())
    assert "STALL_JWT_SECRET is no longer used" in caplog.text
    token = _hs256_with_the_retired_secret()
    with pytest.raises(ProblemError):
        app.state.token_verifier.verify(token)
