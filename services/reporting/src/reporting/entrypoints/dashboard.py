"""The district offices' dashboard: the page at ``/`` and its static files under ``/static/``.

Everything the page needs is served from the package (no CDN: an office network may be closed),
ECharts included (vendored by ``make assets``, see ``deploy/assets/assets.lock.json``). The page
talks only to this service's own API, with the staff token the user pastes, so its Content
Security Policy allows nothing but this origin (:mod:`stallkit.pages`).
"""

from __future__ import annotations

import html
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter

from contracts.catalogue import DISTRICT_NAMES
from stallkit.pages import pages_router

#: Where the page's own files and the vendored ones live, inside the package.
STATIC_ROOT = files("reporting") / "static"
PAGE_TEMPLATE = "dashboard/index.html"


def district_options() -> str:
    """The ``<option>`` list of the district picker: the whole city, then each district."""
    choices = [("", "全市（珠海市）", "Whole city (Zhuhai)")]
    choices += [(d.value, zh, en) for d, (zh, en) in DISTRICT_NAMES.items()]
    return "\n".join(
        f'<option value="{html.escape(value)}" data-zh="{html.escape(zh)}" '
        f'data-en="{html.escape(en)}">{html.escape(zh)}</option>'
        for value, zh, en in choices
    )


def dashboard_router(root: Traversable = STATIC_ROOT) -> APIRouter:
    """``GET /``: the dashboard page; ``GET /static/{path}``: its files (not in the schema)."""
    return pages_router(
        root,
        rendered={"/": PAGE_TEMPLATE},
        static_url="/static/",
        placeholders={"districts": district_options},
    )
