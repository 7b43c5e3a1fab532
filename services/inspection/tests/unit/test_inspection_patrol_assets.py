"""The patrol page's HTTP side: the page with its security headers, the service worker (a
script naming every file it precaches, each of which is served), the files' versions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from inspection.adapters.expectation_store import InMemoryExpectationStore
from inspection.app import create_app
from inspection.config import InspectionSettings
from stalltest.plugin import unit_parts

pytestmark = pytest.mark.unit


@pytest.fixture
async def client(fake_redis: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = InspectionSettings()
    parts, _ = unit_parts(settings, fake_redis)
    app = create_app(settings, parts=parts, store=InMemoryExpectationStore(), configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inspection") as client:
        yield client


async def test_the_page_is_html_with_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/app/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src" not in policy or "unsafe-inline" not in policy.split("script-src")[1]
    assert r.headers["cache-control"] == "no-cache"
    page = r.text
    assert '<html lang="zh-CN">' in page
    assert "{{" not in page  # every placeholder rendered
    # Scripts are files of this origin only: no inline script, no inline event handler.
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts
    assert all("src=" in tag for tag in scripts)
    assert not re.search(r"\son[a-z]+=", page)
    # The QR decoder (a classic script) comes before the page's module.
    assert page.index("jsQR.js") < page.index('type="module"')
    assert 'capture="environment"' in page


async def test_app_without_slash_goes_to_the_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/app")
    assert (r.status_code, r.headers["location"]) == (308, "/app/")


async def test_the_service_worker_precaches_files_that_are_served(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/app/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"  # a new release is seen at once
    precached = re.findall(r'"(/app/static/[^"]+\?v=[0-9a-f]{16})"', r.text)
    assert any("kit/scanner.js" in url for url in precached)
    assert any("kit/vendor/jsqr/jsQR.js" in url for url in precached)
    assert any("patrol/patrol.js" in url for url in precached)
    for url in [*precached, "/app/", "/app/manifest.webmanifest"]:
        got = await client.get(url)
        assert got.status_code == 200, url
        if "?v=" in url:
            assert "immutable" in got.headers["cache-control"], url


async def test_every_module_the_page_imports_is_precached(client: httpx.AsyncClient) -> None:
    worker = (await client.get("/app/sw.js")).text
    script = (await client.get("/app/static/patrol/patrol.js")).text
    for imported in re.findall(r'from "\.\./([^"]+)"|from "\./([^"]+)"', script):
        path = imported[0] or f"patrol/{imported[1]}"
        assert f"/app/static/{path}?v=" in worker, path


async def test_the_manifest_names_the_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/app/manifest.webmanifest")
    assert r.headers["content-type"].startswith("application/manifest+json")
    manifest = r.json()
    assert (manifest["start_url"], manifest["scope"]) == ("/app/", "/app/")
    icon = await client.get(manifest["icons"][0]["src"])
    assert icon.status_code == 200


async def test_the_pages_are_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/app")]
