"""Inspection settings: the stall-code public key and refusing development values in prod."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from allocation.config import DEV_STALL_CODE_SEED_B64
from inspection.config import InspectionSettings
from stallkit.devkeys import DEV_STALL_CODE_PUBLIC_KEY_B64
from stallkit.keys import Issuer
from stalltest.tokens import fresh_key, jwks_of

pytestmark = pytest.mark.unit

PROD_JWKS = jwks_of(fresh_key(Issuer.ALLOCATION), fresh_key(Issuer.STAFF))
PROD_SALT = "a-production-salt-of-enough-length"


def fresh_public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INSPECTION_STALL_CODE_PUBLIC_KEY", "STALL_MODE", "STALL_TOKEN_JWKS"):
        monkeypatch.delenv(name, raising=False)


def test_dev_seed_is_the_documented_one() -> None:
    assert base64.b64decode(DEV_STALL_CODE_SEED_B64) == b"dev-only-stall-code-seed-32bytes"


def test_default_key_is_the_public_half_of_the_dev_seed() -> None:
    settings = InspectionSettings()
    seed = base64.b64decode(DEV_STALL_CODE_SEED_B64)
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(b"XZ-03-A017")
    settings.stall_code_key().verify(signature, b"XZ-03-A017")  # raises if it does not match
    assert settings.stall_code_public_key == DEV_STALL_CODE_PUBLIC_KEY_B64
    assert settings.service_name == "inspection"


def test_key_is_read_from_the_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = fresh_public_key()
    monkeypatch.setenv("INSPECTION_STALL_CODE_PUBLIC_KEY", key)
    assert InspectionSettings().stall_code_public_key == key


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_key_that_is_not_an_ed25519_public_key_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="stall_code_public_key"):
        InspectionSettings(stall_code_public_key=bad)


def test_production_refuses_the_dev_public_key() -> None:
    with pytest.raises(ValidationError, match="stall_code_public_key still has its development"):
        InspectionSettings(stall_mode="prod", stall_token_jwks=PROD_JWKS)


def test_production_refuses_the_dev_token_keys() -> None:
    with pytest.raises(ValidationError, match="STALL_TOKEN_JWKS"):
        InspectionSettings(
            stall_mode="prod", stall_code_public_key=fresh_public_key(), subject_salt=PROD_SALT
        )


def test_production_refuses_the_dev_subject_salt() -> None:
    with pytest.raises(ValidationError, match="subject_salt still has its development"):
        InspectionSettings(
            stall_mode="prod", stall_token_jwks=PROD_JWKS, stall_code_public_key=fresh_public_key()
        )


def test_production_accepts_its_own_keys() -> None:
    key = fresh_public_key()
    settings = InspectionSettings(
        stall_mode="prod",
        stall_token_jwks=PROD_JWKS,
        stall_code_public_key=key,
        subject_salt=PROD_SALT,
    )
    assert settings.stall_code_public_key == key
