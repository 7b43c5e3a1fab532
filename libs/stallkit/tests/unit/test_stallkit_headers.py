"""Security headers on every answer of a service built with ``build_service``: API JSON, every
kind of problem+json (the handlers', the body cap's, a crash's), CORS preflights, the pages and
their files, whose own policy and caching win."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, Response
from pydantic import BaseModel

from stallkit.pages import IMMUTABLE, pages_router
from stallkit.problems import ProblemError
from stallkit.service import MAX_BODY_BYTES, build_service
from stallkit.settings import CommonSettings
from stalltest.plugin import FakeRedis, unit_parts

pytestmark = pytest.mark.unit

PAGE_ORIGIN = "https://book.example.gov.cn"
#: What every answer carries (a response's own Cache-Control wins: checked apart).
EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


class _Body(BaseModel):
    n: int


def _api() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/things")
    async def make_thing(body: _Body) -> dict[str, int]:
        if body.n < 0:
            raise ProblemError("forbidden", 403)
        if body.n == 0:
            raise RuntimeError("boom")
        return {"n": body.n}

    @router.get("/me")
    async def my_profile() -> dict[str, str]:
        return {"name": "李师傅", "phone_masked": "138****8000"}

    @router.get("/keys")
    async def public_keys(response: Response) -> dict[str, list[str]]:
        response.headers["Cache-Control"] = "public, max-age=300"
        return {"keys": []}

    return router


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A service with an API, a page under ``/app/`` and CORS for a page on another origin."""
    (tmp_path / "index.html").write_text(
        '<!doctype html><link rel="stylesheet" href="{{ static:kit/field.css }}">'
    )
    pages = pages_router(tmp_path, rendered={"/app/": "index.html"}, static_url="/app/static/")
    settings = CommonSettings(service_name="unit", cors_origins=PAGE_ORIGIN)
    parts, _ = unit_parts(settings, FakeRedis())
    app = build_service(
        parts, title="t", description="d", routers=[_api(), pages], configure_logs=False
    )
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def assert_secured(response: httpx.Response) -> None:
    """The security headers, each once."""
    for name, value in EVERYWHERE.items():
        assert response.headers.get_list(name) == [value], (response.url, name)
    assert len(response.headers.get_list("cache-control")) == 1


async def test_api_answers_carry_the_headers_and_are_not_stored(
    client: httpx.AsyncClient,
) -> None:
    answers = [
        await client.get("/v1/me"),
        await client.post("/v1/things", json={"n": 1}),
        await client.get("/healthz"),
    ]
    for response in answers:
        assert response.status_code == 200
        assert_secured(response)
        assert response.headers["cache-control"] == "no-store"
    # A route that may be cached says so, and its word stands.
    keys = await client.get("/v1/keys")
    assert_secured(keys)
    assert keys.headers["cache-control"] == "public, max-age=300"


async def test_every_kind_of_problem_carries_the_headers(client: httpx.AsyncClient) -> None:
    oversized = b"x" * (MAX_BODY_BYTES + 1)
    problems = {
        422: await client.post("/v1/things", json={"n": "x"}),
        403: await client.post("/v1/things", json={"n": -1}),
        404: await client.get("/v1/nowhere"),
        405: await client.delete("/v1/me"),
        413: await client.post(
            "/v1/things", content=oversized, headers={"Content-Type": "application/json"}
        ),
        500: await client.post("/v1/things", json={"n": 0}),
    }
    for status, response in problems.items():
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert_secured(response)
        assert response.headers["cache-control"] == "no-store"


async def test_a_cors_preflight_carries_the_headers(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/v1/me",
        headers={"Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert_secured(preflight)


async def test_pages_keep_their_policy_and_files_keep_their_caching(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/app/")
    assert page.status_code == 200
    assert_secured(page)
    assert page.headers["cache-control"] == "no-cache"  # the page's own: revalidated
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["permissions-policy"].startswith("camera=(self)")

    found = re.search(r'href="(/app/static/kit/field\.css\?v=\w+)"', page.text)
    assert found, page.text
    versioned = await client.get(found.group(1))
    unversioned = await client.get("/app/static/kit/field.css")
    not_modified = await client.get(
        found.group(1), headers={"If-None-Match": versioned.headers["etag"]}
    )
    assert (versioned.status_code, unversioned.status_code, not_modified.status_code) == (
        200,
        200,
        304,
    )
    assert versioned.headers["cache-control"] == IMMUTABLE
    assert unversioned.headers["cache-control"] == "no-cache"
    assert not_modified.headers["cache-control"] == IMMUTABLE
    for response in (versioned, unversioned, not_modified):
        assert_secured(response)
