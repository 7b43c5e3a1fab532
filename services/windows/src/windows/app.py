"""Composition root of the windows service: settings, Redis, Kafka, routes and subscribers.

``uvicorn windows.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from faststream_fastapi import FastStreamAPI

from stallkit.service import ServiceParts, build_service, lazy_app
from windows.adapters.schedule_store import RedisScheduleStore, ScheduleStore
from windows.config import WindowsSettings
from windows.entrypoints.http import schedule_router
from windows.entrypoints.subscribers import ScheduleProjector, subscribe_catalogue


def create_app(
    settings: WindowsSettings | None = None,
    *,
    parts: ServiceParts | None = None,
    store: ScheduleStore | None = None,
    configure_logs: bool = True,
) -> FastStreamAPI:
    """Build the windows service; ``parts`` and ``store`` default to the real adapters."""
    settings = settings or WindowsSettings()
    if parts is None:
        parts = ServiceParts.from_settings(settings)
    store = store or RedisScheduleStore(parts.redis, settings)
    subscribe_catalogue(parts.broker, settings, parts.redis, ScheduleProjector(store))
    return build_service(
        parts,
        title="Windows service",
        description="The market-window timeline: schedules from the catalogue, window events.",
        routers=[schedule_router(store)],
        configure_logs=configure_logs,
    )


__getattr__ = lazy_app(create_app, globals())
