"""``stallctl token``, ``jwks`` and ``keygen``: staff tokens that the printed JWKS verifies."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from stallctl.cli import app
from stallctl.tokens import DEV_STAFF_SEED_B64
from stallkit.auth import AUDIENCES
from stallkit.devkeys import DEV_STAFF_TOKEN_KID
from stallkit.keys import Issuer, SigningKey, TokenKeys, new_seed, raw_public_key

pytestmark = pytest.mark.unit

RUNNER = CliRunner()
#: Variables of the caller's shell that would change what the commands do.
CLEAN = {
    "STALL_MODE": None,
    "STALL_STAFF_SIGNING_KEY": None,
    "STALL_JWT_SECRET": None,
    "STALL_CLOCK_OFFSET_SECONDS": None,
    "STALL_CLOCK_SPEED": None,
    "STALL_CLOCK_ANCHOR": None,
    "ALLOCATION_TOKEN_SIGNING_KEY": None,
}


def run(*args: str, **env: str) -> Result:
    return RUNNER.invoke(app, list(args), env={**CLEAN, **env})


def stdout_of(*args: str, **env: str) -> str:
    result = run(*args, **env)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_a_staff_token_verifies_with_the_printed_jwks_only() -> None:
    seed = new_seed()
    token = stdout_of("token", "--role", "patrol", "--sub", "p001", "--district", "doumen",
                      STALL_STAFF_SIGNING_KEY=seed)  # fmt: skip
    jwks = jwt.PyJWKSet.from_json(stdout_of("jwks", STALL_STAFF_SIGNING_KEY=seed))
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(
        token, jwks[kid], algorithms=["EdDSA"], audience="inspection",
        issuer=Issuer.STAFF.uri,
    )  # fmt: skip
    assert (claims["sub"], claims["role"], claims["district"]) == ("p001", "patrol", "doumen")
    assert claims["aud"] == list(AUDIENCES)
    dev_jwks = jwt.PyJWKSet.from_json(stdout_of("jwks"))
    assert kid not in [key.key_id for key in dev_jwks.keys]  # another key, another kid


def test_the_audience_option_narrows_the_token() -> None:
    token = stdout_of("token", "--role", "admin", "--sub", "ops", "--audience", "windows",
                      "--audience", "reporting")  # fmt: skip
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == ["windows", "reporting"]
    assert jwt.get_unverified_header(token)["kid"] == DEV_STAFF_TOKEN_KID  # zero configuration
    assert run("token", "--role", "admin", "--sub", "ops", "--audience", "bank").exit_code == 2


def test_vendor_tokens_are_signed_with_allocations_key_never_the_staff_key() -> None:
    seed = new_seed()
    keys = {"ALLOCATION_TOKEN_SIGNING_KEY": seed, "STALL_STAFF_SIGNING_KEY": new_seed()}
    token = stdout_of("token", "--role", "vendor", "--sub", "vd_1", **keys)
    allocation_jwks = SigningKey.from_seed(Issuer.ALLOCATION, seed).jwks()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(allocation_jwks)[kid]
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience="allocation",
                        issuer=Issuer.ALLOCATION.uri)  # fmt: skip
    # as allocation's login makes them: for allocation, and inspection (the vendor's own warnings)
    assert (claims["sub"], claims["role"]) == ("vd_1", "vendor")
    assert claims["aud"] == ["allocation", "inspection"]
    dev = stdout_of("token", "--role", "vendor", "--sub", "vd_1")  # zero configuration
    assert jwt.get_unverified_header(dev)["kid"].startswith("allocation-")
    refused = run("token", "--role", "vendor", "--sub", "vd_1", STALL_MODE="prod",
                  STALL_STAFF_SIGNING_KEY=new_seed())  # fmt: skip
    assert refused.exit_code == 2
    assert "ALLOCATION_TOKEN_SIGNING_KEY" in refused.output


def test_stallctl_mints_no_empty_subjects() -> None:
    assert run("token", "--role", "admin", "--sub", "  ").exit_code == 2


def test_production_refuses_the_development_staff_key() -> None:
    refused = run("token", "--role", "admin", "--sub", "ops", STALL_MODE="prod")
    assert refused.exit_code == 2
    assert "STALL_STAFF_SIGNING_KEY" in refused.output
    assert run("jwks", STALL_MODE="prod", STALL_STAFF_SIGNING_KEY=DEV_STAFF_SEED_B64).exit_code == 2
    clock = run("token", "--role", "admin", "--sub", "ops", STALL_MODE="prod",
                STALL_STAFF_SIGNING_KEY=new_seed(), STALL_CLOCK_OFFSET_SECONDS="3600")  # fmt: skip
    assert clock.exit_code == 2
    ok = run("token", "--role", "admin", "--sub", "ops", STALL_MODE="prod",
             STALL_STAFF_SIGNING_KEY=new_seed())  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_keygen_prints_a_matching_pair_for_each_kind() -> None:
    vendor_line, vendor_jwks = stdout_of("keygen", "vendor-tokens").splitlines()
    name, _, seed = vendor_line.partition("=")
    assert name == "ALLOCATION_TOKEN_SIGNING_KEY"
    assert json.loads(vendor_jwks) == SigningKey.from_seed(Issuer.ALLOCATION, seed).jwks()
    assert '"d"' not in vendor_jwks
    staff_line, staff_jwks = stdout_of("keygen", "staff-tokens").splitlines()
    assert staff_line.startswith("STALL_STAFF_SIGNING_KEY=")
    assert [kid[:6] for kid in TokenKeys.parse(staff_jwks)] == ["staff-"]
    private_line, public_line = stdout_of("keygen", "stall-codes").splitlines()
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_line.split("=", 1)[1]))
    public = base64.b64encode(raw_public_key(private.public_key())).decode()
    assert public_line == f"INSPECTION_STALL_CODE_PUBLIC_KEY={public}"
    assert stdout_of("keygen", "vendor-tokens") != stdout_of("keygen", "vendor-tokens")


def test_jwks_with_merges_the_vendor_key_into_what_services_trust() -> None:
    seed = new_seed()
    vendor_jwks = stdout_of("keygen", "vendor-tokens").splitlines()[1]
    merged = TokenKeys.parse(stdout_of("jwks", "--with", vendor_jwks, STALL_STAFF_SIGNING_KEY=seed))
    staff_kid = SigningKey.from_seed(Issuer.STAFF, seed).kid
    assert set(merged) == {staff_kid, *TokenKeys.parse(vendor_jwks)}
    private = json.dumps({"keys": [{**json.loads(vendor_jwks)["keys"][0], "d": "AAAA"}]})
    refused = run("jwks", "--with", private)
    assert refused.exit_code == 1
    assert "private key" in refused.output
