"""The district offices' dashboard: the page at ``/`` and its static files under ``/static/``.

Everything the page needs is served from the package (no CDN: an office network may be closed),
ECharts included (vendored by ``make assets``, see ``deploy/assets/assets.lock.json``). The page
talks only to this service's own API, with the staff token the user pastes, so its Content
Security Policy allows nothing but this origin.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from contracts.catalogue import DISTRICT_NAMES
from stallkit.problems import ProblemError

#: Where the page's own files and the vendored ones live, inside the package.
STATIC_ROOT = files("reporting") / "static"
PAGE_TEMPLATE = "dashboard/index.html"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # ECharts' tooltips carry inline style attributes; scripts stay this origin's only
        "style-src 'self' 'unsafe-inline'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: Under a ``?v=`` that matches the file's content, a file can be cached for good.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Otherwise, the browser asks again each time and gets a 304 while the file is the same.
REVALIDATE = "no-cache"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    "": "text/plain; charset=utf-8",  # LICENSE, NOTICE
}
_PLACEHOLDER = re.compile(r"\{\{\s*(?P<name>[a-z_]+)(?::(?P<arg>[^\s}]+))?\s*\}\}")


@dataclass(frozen=True)
class StaticFile:
    """One file served under ``/static/``: its bytes, type and content hash."""

    body: bytes
    media_type: str
    version: str

    @property
    def etag(self) -> str:
        """A strong ETag: the content hash."""
        return f'"{self.version}"'


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_walk(entry, f"{name}/"))
        elif entry.is_file() and not entry.name.startswith("."):
            found[name] = entry
    return found


def load_static(root: Traversable = STATIC_ROOT) -> dict[str, StaticFile]:
    """Every servable file under ``root`` by its path, read once."""
    loaded = {}
    for path, entry in _walk(root).items():
        media_type = MEDIA_TYPES.get(PurePosixPath(path).suffix)
        if media_type is None:
            continue  # not something the page uses (source maps, editor files)
        body = entry.read_bytes()
        loaded[path] = StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:16])
    return loaded


def district_options() -> str:
    """The ``<option>`` list of the district picker: the whole city, then each district."""
    choices = [("", "全市（珠海市）", "Whole city (Zhuhai)")]
    choices += [(d.value, zh, en) for d, (zh, en) in DISTRICT_NAMES.items()]
    return "\n".join(
        f'<option value="{html.escape(value)}" data-zh="{html.escape(zh)}" '
        f'data-en="{html.escape(en)}">{html.escape(zh)}</option>'
        for value, zh, en in choices
    )


def render_page(static: dict[str, StaticFile], template: str) -> bytes:
    """The page: ``{{ static:path }}`` becomes a versioned URL, ``{{ districts }}`` the options.

    A reference to a file that is not there is an error when the router is built, not a 404
    in an office.
    """

    def replace(match: re.Match[str]) -> str:
        name, arg = match["name"], match["arg"]
        if name == "static" and arg:
            if arg not in static:
                raise LookupError(f"the dashboard refers to a missing static file: {arg}")
            return f"/static/{arg}?v={static[arg].version}"
        if name == "districts" and not arg:
            return district_options()
        raise LookupError(f"unknown placeholder in the dashboard page: {match[0]}")

    return _PLACEHOLDER.sub(replace, template).encode()


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def dashboard_router(root: Traversable = STATIC_ROOT) -> APIRouter:
    """``GET /``: the dashboard page; ``GET /static/{path}``: its files (not in the schema)."""
    static = load_static(root)
    template = static.pop(PAGE_TEMPLATE).body.decode()
    page = render_page(static, template)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def dashboard() -> Response:
        """The district dashboard (Chinese, with an English switch)."""
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @router.get("/static/{path:path}")
    async def static_file(
        path: Annotated[str, Path()],
        v: Annotated[str | None, Query()] = None,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """A file of the page, cached for good under its content version."""
        found = static.get(path)
        if found is None:
            raise ProblemError("not_found", 404, f"no static file {path}")
        headers = {
            "ETag": found.etag,
            "Cache-Control": IMMUTABLE if v == found.version else REVALIDATE,
            "X-Content-Type-Options": "nosniff",
        }
        if _matches(if_none_match, found.etag):
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    return router
