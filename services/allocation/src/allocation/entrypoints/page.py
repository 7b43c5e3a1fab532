"""The vendor's page at ``/app/``: register, sign in, find a market, book or apply, see and
cancel bookings, check in by scanning the stall's code with the phone's camera, and read the
warnings and cases inspection holds about the vendor.

Its files are in the package (``static/app``) with stallkit's shared field-page files (the
scanner, the vendored QR decoder, the styles). It calls this service's API, and inspection's
``/v1/me/warnings`` at ``ALLOCATION_INSPECTION_URL`` when that is set.
"""

from __future__ import annotations

import html
from importlib.resources import files
from urllib.parse import urlsplit

from fastapi import APIRouter

from stallkit.pages import pages_router

PAGE_URL = "/app/"


def vendor_page_router(inspection_url: str = "") -> APIRouter:
    """``GET /app/`` (the page) and ``GET /app/static/{path}`` (its files)."""
    base = inspection_url.rstrip("/")
    parts = urlsplit(base)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    return pages_router(
        files("allocation") / "static",
        rendered={PAGE_URL: "app/index.html"},
        static_url=f"{PAGE_URL}static/",
        placeholders={"inspection_url": lambda: html.escape(base)},
        connect_src=[origin] if origin else [],
    )
