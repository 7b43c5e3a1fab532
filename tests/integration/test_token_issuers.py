"""The issuers' JWKS verify their tokens, with keys made as an operator makes them.

Allocation runs against the session's real broker and Redis with a vendor-token key from
``stallctl keygen`` and the ``STALL_TOKEN_JWKS`` that ``stallctl jwks --with`` builds: no
development key is trusted.
"""

from __future__ import annotations

import json
from datetime import date

import jwt
import pytest
from typer.testing import CliRunner

from stallctl.cli import app as stallctl
from stallkit.auth import Role
from stallkit.keys import Issuer, new_seed
from stalltest.allocation import register_vendor, serve, settings_for, small_catalogue
from stalltest.plugin import Isolation
from stalltest.tokens import bearer, dev_token

pytestmark = pytest.mark.integration


def stallctl_out(*args: str, **env: str) -> str:
    """What ``stallctl`` prints, run in-process with only ``env`` of the STALL_ variables."""
    clean = {
        "STALL_MODE": None,
        "STALL_STAFF_SIGNING_KEY": None,
        "STALL_CLOCK_OFFSET_SECONDS": None,
    }
    result = CliRunner().invoke(stallctl, list(args), env={**clean, **env})
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


async def test_issuers_jwks_verify_their_tokens_and_the_services_accept_them(
    isolation: Isolation,
) -> None:
    vendor_line, vendor_jwks = stallctl_out("keygen", "vendor-tokens").splitlines()
    staff_seed = new_seed()
    trusted = stallctl_out("jwks", "--with", vendor_jwks, STALL_STAFF_SIGNING_KEY=staff_seed)
    settings = settings_for(
        isolation, token_signing_key=vendor_line.split("=", 1)[1], token_jwks=trusted
    )
    async with serve(settings) as api, api.client() as client:
        served = await client.get("/.well-known/jwks.json")  # no Authorization header
        assert served.status_code == 200, served.text
        assert served.json() == json.loads(vendor_jwks)  # what keygen printed: public only
        assert "d" not in served.json()["keys"][0]

        registered = await register_vendor(
            client, api.sms_outbox, name="陈小梅", phone="13900001111", password="password123",
            priority_group="none", categories=["cooked_food"],
            health_certificate_expires=date(2099, 1, 1).isoformat(),
        )  # fmt: skip
        token = registered.token

        # Only the JWKS allocation serves, read by another JWT library's JWKS support.
        keys = jwt.PyJWKSet.from_dict(served.json())
        kid = jwt.get_unverified_header(token)["kid"]
        claims = jwt.decode(
            token, keys[kid], algorithms=["EdDSA"], audience="allocation",
            issuer=Issuer.ALLOCATION.uri,
        )  # fmt: skip
        assert claims["role"] == "vendor"
        me = await client.get("/v1/vendors/me", headers=bearer(token))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == claims["sub"]

        # A staff token from `stallctl token`, checked with `stallctl jwks`, then used.
        admin = stallctl_out("token", "--role", "admin", "--sub", "ops",
                             STALL_STAFF_SIGNING_KEY=staff_seed)  # fmt: skip
        staff_keys = jwt.PyJWKSet.from_json(
            stallctl_out("jwks", STALL_STAFF_SIGNING_KEY=staff_seed)
        )
        staff_kid = jwt.get_unverified_header(admin)["kid"]
        assert jwt.decode(
            admin, staff_keys[staff_kid], algorithms=["EdDSA"], audience="allocation",
            issuer=Issuer.STAFF.uri,
        )["role"] == "admin"  # fmt: skip
        catalogue = small_catalogue().model_dump(mode="json")
        put = await client.put("/v1/admin/catalogue", json=catalogue, headers=bearer(admin))
        assert put.status_code == 200, put.text

        # What this deployment does not trust: the development keys, other audiences.
        dev_admin = dev_token(Role.ADMIN, "ops", now=api.clock.now())
        refused = await client.put("/v1/admin/catalogue", json=catalogue, headers=bearer(dev_admin))
        assert (refused.status_code, refused.json()["code"]) == (401, "unauthorized")
        narrow = stallctl_out("token", "--role", "admin", "--sub", "ops", "--audience", "windows",
                              STALL_STAFF_SIGNING_KEY=staff_seed)  # fmt: skip
        elsewhere = await client.get("/v1/auth/whoami", headers=bearer(narrow))
        assert (elsewhere.status_code, elsewhere.json()["code"]) == (401, "wrong_audience")
