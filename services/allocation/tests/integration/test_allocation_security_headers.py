"""The security headers as a vendor's browser gets them from allocation: on the profile (personal
data, never stored), on a refusal, on the vendor page (its own policy kept) and its files (their
caching kept), on the JWKS (cacheable by design)."""

from __future__ import annotations

import re

import httpx
import pytest

from stallkit.pages import IMMUTABLE
from stalltest.allocation import RunningAllocation

pytestmark = pytest.mark.integration


def assert_secured(response: httpx.Response) -> None:
    """The headers every answer carries."""
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"


async def test_every_answer_a_vendor_gets_carries_the_security_headers(
    svc: RunningAllocation,
) -> None:
    vendor = await svc.register(
        name="陈姐", phone="13644445555", password="evening-market", categories=["services"]
    )
    async with svc.client(vendor.token) as c:
        profile = await c.get("/v1/vendors/me")
        missing = await c.get("/v1/bookings/bk_nope")
        wrong_login = await c.post(
            "/v1/auth/token", data={"username": vendor.phone, "password": "not-it"}
        )
        page = await c.get("/app/")
        found = re.search(r'src="(/app/static/app/vendor\.js\?v=\w+)"', page.text)
        assert found, page.text
        script = await c.get(found.group(1))
        keys = await c.get("/.well-known/jwks.json")

    assert profile.status_code == 200
    assert profile.json()["phone_masked"] == "136****5555"
    for response in (profile, missing, wrong_login):
        assert_secured(response)
        assert response.headers["cache-control"] == "no-store"
    assert (missing.status_code, missing.json()["code"]) == (404, "booking_not_found")
    assert missing.headers["content-type"] == "application/problem+json"
    assert wrong_login.status_code == 401

    assert page.status_code == 200
    assert_secured(page)
    assert page.headers["cache-control"] == "no-cache"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert_secured(script)
    assert script.headers["cache-control"] == IMMUTABLE
    assert_secured(keys)
    assert keys.headers["cache-control"] == "public, max-age=300"
