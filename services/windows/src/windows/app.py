"""Composition root of the windows service: settings, Redis, Kafka, routes, subscribers, the
tick loop and the outbox relays.

``uvicorn windows.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the parts or the schedule store).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from faststream_fastapi import FastStreamAPI

from stallkit.outbox import OutboxRelay
from stallkit.service import ServiceParts, build_service, lazy_app
from windows.adapters.schedule_store import RedisScheduleStore, ScheduleStore
from windows.adapters.suspensions import SuspensionStore
from windows.adapters.timers import TimerStore
from windows.config import WindowsSettings
from windows.entrypoints.http import schedule_router, timeline_router
from windows.entrypoints.subscribers import ScheduleProjector, subscribe_catalogue
from windows.service_layer.ticker import Ticker
from windows.service_layer.timeline import Timeline


def create_app(
    settings: WindowsSettings | None = None,
    *,
    parts: ServiceParts | None = None,
    store: ScheduleStore | None = None,
    configure_logs: bool = True,
) -> FastStreamAPI:
    """Build the windows service; ``parts`` and ``store`` default to the real ones."""
    settings = settings or WindowsSettings()
    if parts is None:
        parts = ServiceParts.from_settings(settings)
    schedules = store or RedisScheduleStore(parts.redis, settings)
    timers = TimerStore(
        parts.redis,
        settings.redis_prefix,
        source=f"/services/{settings.service_name}",
        tolerance=timedelta(seconds=settings.late_tolerance_seconds),
        stale_after=timedelta(hours=settings.stale_after_hours),
    )
    timeline = Timeline(
        settings, parts.clock, schedules, timers, SuspensionStore(parts.redis, timers)
    )
    subscribe_catalogue(parts.broker, settings, parts.redis, ScheduleProjector(schedules, timeline))
    ticker = Ticker(
        timeline,
        parts.clock,
        registry=parts.registry,
        poll_seconds=settings.tick_seconds,
        sweep_seconds=settings.sweep_seconds,
    )

    async def start_ticker() -> Callable[[], Awaitable[None]]:
        ticker.start()
        return ticker.stop

    async def start_relays() -> Callable[[], Awaitable[None]]:
        # One per outbox shard; on each shard only the lease holder relays (in order).
        relays = [
            OutboxRelay(parts.redis, settings, stream, registry=parts.registry)
            for stream in timers.outboxes()
        ]
        for relay in relays:
            relay.start()

        async def stop() -> None:
            for relay in relays:
                await relay.stop()

        return stop

    app = build_service(
        parts,
        title="Windows service 时段管理",
        description=(
            "The city's clock for the double-limit scheme: every market window opens, reaches its "
            "check-in deadline, closes soon and closes on time, durably, on any number of "
            "replicas; suspensions and emergency closures."
        ),
        routers=[timeline_router(timeline), schedule_router(schedules)],
        background=[start_relays, start_ticker],
        configure_logs=configure_logs,
    )
    app._application.state.timeline = timeline
    app._application.state.ticker = ticker
    return app


__getattr__ = lazy_app(create_app, globals())
