"""The patrol officers' phone page: ``/app/``, its service worker and its static files.

Everything comes from the package (stallkit's shared field styles, scanner and vendored QR
decoder under ``kit/``); the page talks only to this service's own API with the staff token the
officer pastes. The service worker (``/app/sw.js``, scope ``/app/``) is a rendered template, so it
lists the files' versioned URLs to precache: the page opens without a network, and the scans taken
then wait on the phone (IndexedDB) until it is back.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter

from stallkit.pages import pages_router

#: The page's own files, inside the package.
STATIC_ROOT = files("inspection") / "static"
#: Where the page lives; the service worker's scope.
APP_URL = "/app/"
RENDERED = {
    APP_URL: "patrol/index.html",
    f"{APP_URL}sw.js": "patrol/sw.js",
    f"{APP_URL}manifest.webmanifest": "patrol/manifest.webmanifest",
}


def patrol_router(root: Traversable = STATIC_ROOT) -> APIRouter:
    """``GET /app/``: the patrol page (``/app`` redirects there); ``/app/sw.js``: its service
    worker; ``/app/static/``: its files (none of them in the API schema)."""
    return pages_router(root, rendered=RENDERED, static_url=f"{APP_URL}static/")
