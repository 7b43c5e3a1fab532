"""The allocation service's ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from faststream_fastapi import FastStreamAPI

from allocation.bootstrap import bootstrap
from allocation.config import AllocationSettings
from allocation.entrypoints import http_admin, http_bookings, http_catalogue, http_vendors
from allocation.entrypoints.problems import install_problems
from allocation.entrypoints.subscribers import register_subscribers
from stallkit.outbox import OutboxRelay
from stallkit.service import ServiceParts, build_service, lazy_app

CATALOGUE_REFRESH_SECONDS = 2.0


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

    async def keep_catalogue_fresh() -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await allocation.catalogue.refresh()
                await asyncio.sleep(CATALOGUE_REFRESH_SECONDS)

        task = asyncio.create_task(loop())

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return stop

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
            http_catalogue.router,
            http_admin.router,
        ],
        background=[start_relay, keep_catalogue_fresh],
    )
    install_problems(app._application)
    app._application.state.allocation = allocation
    return app


__getattr__ = lazy_app(create_app, globals())
