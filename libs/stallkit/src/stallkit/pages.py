"""The services' own web pages: templates rendered once at start, their files served from the
package with content-versioned URLs (no CDN, no build step, nothing fetched at run time).

A service names where its files are (its package's ``static`` folder, and stallkit's shared
one under ``kit/``: the stall-code scanner, the page styles, the vendored QR decoder), which
URLs are rendered templates (a page, a service worker) and under which prefix the files are
served. In a template, ``{{ static:path }}`` becomes the file's versioned URL (a reference to a
missing file fails when the router is built, not on a phone), and a service may add its own
placeholders (``{{ districts }}``).

Files are cached for good under a ``?v=`` that matches their content hash, revalidated with an
ETag otherwise, and sent gzip-compressed to a browser that accepts it (the QR decoder is a
quarter of a megabyte uncompressed; a vendor's phone may be on a slow connection).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import RedirectResponse

from stallkit.problems import ProblemError

#: stallkit's shared page files, served to every page under ``kit/``.
KIT_STATIC = files("stallkit") / "static"
KIT_PREFIX = "kit/"


def content_security_policy(connect_src: Sequence[str] = ()) -> str:
    """The pages' policy: this origin only, plus the API origins in ``connect_src``."""
    return "; ".join(
        [
            "default-src 'self'",
            # chart tooltips and the pages' show/hide carry inline style attributes; scripts
            # stay this origin's only
            "style-src 'self' 'unsafe-inline'",
            # a photo's preview before upload, and the camera frame read by the decoder
            "img-src 'self' blob: data:",
            "media-src 'self' blob: mediastream:",
            "connect-src " + " ".join(["'self'", *connect_src]),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def page_headers(connect_src: Sequence[str] = ()) -> dict[str, str]:
    """The headers of a page (not of its files)."""
    return {
        "Content-Security-Policy": content_security_policy(connect_src),
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(self), geolocation=(self), microphone=()",
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
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    "": "text/plain; charset=utf-8",  # LICENSE, NOTICE
}
#: Worth compressing: text of at least this many bytes.
GZIP_MIN_BYTES = 1024
_PLACEHOLDER = re.compile(r"\{\{\s*(?P<name>[a-z_]+)(?::(?P<arg>[^\s}]+))?\s*\}\}")


@dataclass(frozen=True)
class StaticFile:
    """One servable file: its bytes (and gzip form when worth it), type and content hash."""

    body: bytes
    media_type: str
    version: str
    gzipped: bytes | None = None

    @classmethod
    def of(cls, body: bytes, media_type: str) -> StaticFile:
        """The file, hashed and (if text and big enough) compressed once."""
        compressible = media_type.startswith(("text/", "application/", "image/svg"))
        packed = (
            gzip.compress(body, compresslevel=9, mtime=0)
            if compressible and len(body) >= GZIP_MIN_BYTES
            else None
        )
        return cls(body, media_type, hashlib.sha256(body).hexdigest()[:16], packed)

    @property
    def etag(self) -> str:
        """A strong ETag: the content hash."""
        return f'"{self.version}"'

    def response(
        self,
        *,
        accept_encoding: str | None,
        if_none_match: str | None,
        cache_control: str,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The file (304 if the browser holds it; gzip if the browser takes it)."""
        sent = {
            "ETag": self.etag,
            "Cache-Control": cache_control,
            "X-Content-Type-Options": "nosniff",
            **(headers or {}),
        }
        if self.gzipped is not None:
            sent["Vary"] = "Accept-Encoding"
        if _matches(if_none_match, self.etag):
            return Response(status_code=304, headers=sent)
        if self.gzipped is not None and "gzip" in (accept_encoding or "").lower():
            sent["Content-Encoding"] = "gzip"
            return Response(self.gzipped, media_type=self.media_type, headers=sent)
        return Response(self.body, media_type=self.media_type, headers=sent)


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_walk(entry, f"{name}/"))
        elif entry.is_file() and not entry.name.startswith("."):
            found[name] = entry
    return found


def load_static(roots: Mapping[str, Traversable]) -> dict[str, StaticFile]:
    """Every servable file under each root, by ``prefix + path``, read once."""
    loaded = {}
    for prefix, root in roots.items():
        for path, entry in _walk(root).items():
            media_type = MEDIA_TYPES.get(PurePosixPath(path).suffix)
            if media_type is None:
                continue  # not something a page uses (source maps, editor files)
            loaded[f"{prefix}{path}"] = StaticFile.of(entry.read_bytes(), media_type)
    return loaded


@functools.cache
def _kit() -> dict[str, StaticFile]:
    """stallkit's shared files, read and compressed once per process (every app built in it,
    a test session's many, serves the same)."""
    return load_static({KIT_PREFIX: KIT_STATIC})


def render(
    template: str,
    static: Mapping[str, StaticFile],
    static_url: str,
    placeholders: Mapping[str, Callable[[], str]] | None = None,
) -> str:
    """``template`` with ``{{ static:path }}`` as ``static_url + path?v=version`` and each named
    placeholder replaced; an unknown placeholder or a missing file is a ``LookupError``."""
    named = placeholders or {}

    def replace(match: re.Match[str]) -> str:
        name, arg = match["name"], match["arg"]
        if name == "static" and arg:
            if arg not in static:
                raise LookupError(f"a page refers to a missing static file: {arg}")
            return f"{static_url}{arg}?v={static[arg].version}"
        if not arg and name in named:
            return named[name]()
        raise LookupError(f"unknown placeholder in a page: {match[0]}")

    return _PLACEHOLDER.sub(replace, template)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def pages_router(
    root: Traversable,
    *,
    rendered: Mapping[str, str],
    static_url: str,
    placeholders: Mapping[str, Callable[[], str]] | None = None,
    connect_src: Sequence[str] = (),
) -> APIRouter:
    """The pages of a service (not in its API schema).

    ``root``: the service's static folder (stallkit's shared files join it under ``kit/``).
    ``rendered``: URL path -> template file, rendered once (a page, a service worker; served
    uncached so a new release is seen at once). ``static_url``: where the files are served
    (``/app/static/``), each cached for good under its version. ``connect_src``: other
    origins the pages may call (another service's API).
    """
    static = {**load_static({"": root}), **_kit()}
    templates = {url: static[name] for url, name in rendered.items()}
    for name in rendered.values():
        static.pop(name, None)  # served rendered only
    pages = {
        url: StaticFile.of(
            render(template.body.decode(), static, static_url, placeholders).encode(),
            template.media_type,
        )
        for url, template in templates.items()
    }
    router = APIRouter(include_in_schema=False)

    def serve_rendered(url: str, page: StaticFile) -> None:
        headers = page_headers(connect_src) if page.media_type.startswith("text/html") else {}

        async def rendered_file(
            accept_encoding: Annotated[str | None, Header()] = None,
            if_none_match: Annotated[str | None, Header()] = None,
        ) -> Response:
            return page.response(
                accept_encoding=accept_encoding,
                if_none_match=if_none_match,
                cache_control=REVALIDATE,
                headers=headers,
            )

        router.add_api_route(url, rendered_file, methods=["GET"])
        if url.endswith("/") and url != "/":
            # ``/app`` is ``/app/``: relative URLs and a service worker's scope need the slash.
            async def without_slash() -> RedirectResponse:
                return RedirectResponse(url, status_code=308)

            router.add_api_route(url.rstrip("/"), without_slash, methods=["GET"])

    for url, page in pages.items():
        serve_rendered(url, page)

    @router.get(static_url + "{path:path}")
    async def static_file(
        path: Annotated[str, Path()],
        v: Annotated[str | None, Query()] = None,
        accept_encoding: Annotated[str | None, Header()] = None,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """A file of the pages, cached for good under its content version."""
        found = static.get(path)
        if found is None:
            raise ProblemError("not_found", 404, f"no static file {path}")
        return found.response(
            accept_encoding=accept_encoding,
            if_none_match=if_none_match,
            cache_control=IMMUTABLE if v == found.version else REVALIDATE,
        )

    return router
