"""Composition root of the reporting service: settings, Redis, Kafka, routes, subscribers.

``uvicorn reporting.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from faststream_fastapi import FastStreamAPI

from reporting.adapters.stats_store import RedisStatsStore, StatsStore
from reporting.config import ReportingSettings
from reporting.entrypoints.http import stats_router
from reporting.entrypoints.subscribers import EventCounter, subscribe_everything
from stallkit.service import ServiceParts, build_service, lazy_app


def create_app(
    settings: ReportingSettings | None = None,
    *,
    parts: ServiceParts | None = None,
    store: StatsStore | None = None,
    configure_logs: bool = True,
) -> FastStreamAPI:
    """Build the reporting service; ``parts`` and ``store`` default to the real adapters."""
    settings = settings or ReportingSettings()
    if parts is None:
        parts = ServiceParts.from_settings(settings)
    store = store or RedisStatsStore(parts.redis, settings)
    subscribe_everything(parts.broker, settings, parts.redis, EventCounter(store))
    return build_service(
        parts,
        title="Reporting service",
        description="Aggregates of every event, district feeds and reports.",
        routers=[stats_router(store)],
        configure_logs=configure_logs,
    )


__getattr__ = lazy_app(create_app, globals())
