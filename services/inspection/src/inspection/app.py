"""Composition root of the inspection service: settings, Redis, Kafka, routes, subscribers.

``uvicorn inspection.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from inspection.adapters.expectation_store import ExpectationStore, RedisExpectationStore
from inspection.config import InspectionSettings
from inspection.entrypoints.http import expectation_router
from inspection.entrypoints.subscribers import ExpectationProjector, subscribe_projection
from stallkit.service import ServiceParts, app_factory, lazy_app


def _wire(
    parts: ServiceParts, settings: InspectionSettings, store: ExpectationStore
) -> Sequence[APIRouter]:
    """Catalogue and booking events build the expectations; the routes read them."""
    subscribe_projection(parts.broker, settings, parts.redis, ExpectationProjector(store))
    return [expectation_router(store, parts.clock)]


create_app = app_factory(
    InspectionSettings,
    title="Inspection service",
    description="Patrol inspection: who should be where, scans, warnings and cases.",
    default_store=lambda parts, settings: RedisExpectationStore(
        parts.redis, settings, parts.clock, settings.expected_retention_days
    ),
    wire=_wire,
)

__getattr__ = lazy_app(create_app, globals())
