"""Composition root of the windows service: settings, Redis, Kafka, routes and subscribers.

``uvicorn windows.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from stallkit.service import ServiceParts, app_factory, lazy_app
from windows.adapters.schedule_store import RedisScheduleStore, ScheduleStore
from windows.config import WindowsSettings
from windows.entrypoints.http import schedule_router
from windows.entrypoints.subscribers import ScheduleProjector, subscribe_catalogue


def _wire(
    parts: ServiceParts, settings: WindowsSettings, store: ScheduleStore
) -> Sequence[APIRouter]:
    """Catalogue events build the schedules; the schedule routes read them."""
    subscribe_catalogue(parts.broker, settings, parts.redis, ScheduleProjector(store))
    return [schedule_router(store)]


create_app = app_factory(
    WindowsSettings,
    title="Windows service",
    description="The market-window timeline: schedules from the catalogue, window events.",
    default_store=lambda parts, settings: RedisScheduleStore(parts.redis, settings),
    wire=_wire,
)

__getattr__ = lazy_app(create_app, globals())
