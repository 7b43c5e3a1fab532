"""Composition root of the inspection service: settings, Redis, Kafka, routes, subscribers.

``uvicorn inspection.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from faststream_fastapi import FastStreamAPI

from inspection.adapters.expectation_store import ExpectationStore, RedisExpectationStore
from inspection.config import InspectionSettings
from inspection.entrypoints.http import expectation_router
from inspection.entrypoints.subscribers import ExpectationProjector, subscribe_projection
from stallkit.service import ServiceParts, build_service, lazy_app


def create_app(
    settings: InspectionSettings | None = None,
    *,
    parts: ServiceParts | None = None,
    store: ExpectationStore | None = None,
    configure_logs: bool = True,
) -> FastStreamAPI:
    """Build the inspection service; ``parts`` and ``store`` default to the real adapters."""
    settings = settings or InspectionSettings()
    if parts is None:
        parts = ServiceParts.from_settings(settings)
    if store is None:
        store = RedisExpectationStore(
            parts.redis, settings, parts.clock, settings.expected_retention_days
        )
    subscribe_projection(parts.broker, settings, parts.redis, ExpectationProjector(store))
    return build_service(
        parts,
        title="Inspection service",
        description="Patrol inspection: who should be where, scans, warnings and cases.",
        routers=[expectation_router(store, parts.clock)],
        configure_logs=configure_logs,
    )


__getattr__ = lazy_app(create_app, globals())
