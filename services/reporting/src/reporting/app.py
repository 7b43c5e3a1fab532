"""Composition root of the reporting service: settings, Redis, Kafka, routes, subscribers.

``uvicorn reporting.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from reporting.adapters.stats_store import RedisStatsStore, StatsStore
from reporting.config import ReportingSettings
from reporting.entrypoints.http import stats_router
from reporting.entrypoints.subscribers import EventCounter, subscribe_everything
from stallkit.service import ServiceParts, app_factory, lazy_app


def _wire(
    parts: ServiceParts, settings: ReportingSettings, store: StatsStore
) -> Sequence[APIRouter]:
    """Every topic's events are counted; the stats route reads the counts."""
    subscribe_everything(parts.broker, settings, parts.redis, EventCounter(store))
    return [stats_router(store)]


create_app = app_factory(
    ReportingSettings,
    title="Reporting service",
    description="Aggregates of every event, district feeds and reports.",
    default_store=lambda parts, settings: RedisStatsStore(parts.redis, settings),
    wire=_wire,
)

__getattr__ = lazy_app(create_app, globals())
