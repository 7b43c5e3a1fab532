"""The allocation service's ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from faststream_fastapi import FastStreamAPI

from allocation.bootstrap import bootstrap
from allocation.config import AllocationSettings
from allocation.entrypoints import (
    http_admin,
    http_bookings,
    http_catalogue,
    http_claims,
    http_draws,
    http_vendors,
)
from allocation.entrypoints.page import vendor_page_router
from allocation.entrypoints.problems import install_problems
from allocation.entrypoints.subscribers import register_subscribers
from stallkit.outbox import OutboxRelay
from stallkit.service import ServiceParts, build_service, lazy_app
from stallkit.tasks import cancel_and_wait

CATALOGUE_REFRESH_SECONDS = 2.0

log = logging.getLogger(__name__)


def _background(work: Coroutine[Any, Any, None]) -> Callable[[], Awaitable[None]]:
    """Run ``work`` as a task; return what cancels and awaits it."""
    task = asyncio.create_task(work)

    async def stop() -> None:
        await cancel_and_wait(task)

    return stop


def create_app(settings: AllocationSettings | None = None) -> FastStreamAPI:
    """Compose the allocation service."""
    settings = settings or AllocationSettings()
    parts = ServiceParts.from_settings(settings)
    allocation = bootstrap(settings, parts.clock, parts.redis)
    register_subscribers(parts.broker, parts.redis, allocation)

    async def start_relay() -> Callable[[], Awaitable[None]]:
        # Every replica runs one; only the holder of the outbox's lease relays (in order).
        relay = OutboxRelay(
            parts.redis, settings, allocation.keys.outbox(), registry=parts.registry
        )
        relay.start()
        return relay.stop

    async def index_earlier_bookings() -> Callable[[], Awaitable[None]]:
        # A store written before the overlap check's active-bookings index existed gets its
        # active bookings indexed once (idempotent; a marker key says it was done).
        marker = allocation.keys.k("migrated", "active-index")

        async def once() -> None:
            while True:
                try:
                    if not await parts.redis.exists(marker):
                        now = allocation.clock.now().timestamp()
                        await allocation.ledger.index_active_bookings(now)
                        await parts.redis.set(marker, b"1")
                    return
                except Exception as exc:  # Redis not there yet: try again
                    log.warning("indexing earlier bookings failed", extra={"error": repr(exc)})
                    await asyncio.sleep(2.0)

        return _background(once())

    async def adopt_typed_eligibility() -> Callable[[], Awaitable[None]]:
        # Vendors registered before claims existed typed their eligibility, and it counted:
        # it becomes pending claims, which count once staff verify them (once; a marker key).
        marker = allocation.keys.k("migrated", "eligibility-claims")

        async def once() -> None:
            while True:
                try:
                    if not await parts.redis.exists(marker):
                        await allocation.vendors.adopt_typed_eligibility(allocation.clock.now())
                        await parts.redis.set(marker, b"1")
                    return
                except Exception as exc:  # Redis not there yet: try again
                    log.warning("adopting typed eligibility failed", extra={"error": repr(exc)})
                    await asyncio.sleep(2.0)

        return _background(once())

    async def keep_catalogue_fresh() -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await allocation.catalogue.refresh()
                await asyncio.sleep(CATALOGUE_REFRESH_SECONDS)

        return _background(loop())

    async def run_due_draws() -> Callable[[], Awaitable[None]]:
        # Every replica looks; a draw's lease lets one run it (a crashed one is taken over).
        async def loop() -> None:
            while True:
                try:
                    await allocation.draws.run_due()
                except Exception as exc:  # Redis away: the next round tries again
                    log.warning("running due draws failed", extra={"error": repr(exc)})
                await asyncio.sleep(settings.draw_poll_seconds)

        return _background(loop())

    app = build_service(
        parts,
        title="Stall allocation 摊位预订",
        description=(
            "Vendors register and book stalls of Zhuhai's temporary convenience markets under "
            "the double-limit rules (limited places, limited times)."
        ),
        routers=[
            http_bookings.router,  # the hot path first: routes are matched in order
            http_vendors.router,
            http_vendors.jwks_router,
            http_claims.router,
            http_draws.router,
            http_catalogue.router,
            http_admin.router,
            vendor_page_router(settings.inspection_url),
        ],
        background=[
            index_earlier_bookings,
            adopt_typed_eligibility,
            start_relay,
            keep_catalogue_fresh,
        ]
        + ([run_due_draws] if settings.lottery else []),
    )
    install_problems(app._application)
    app._application.state.allocation = allocation
    return app


__getattr__ = lazy_app(create_app, globals())
