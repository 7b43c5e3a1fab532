"""Composition root of the reporting service: settings, Redis, Kafka, routes, subscribers.

``uvicorn reporting.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from datetime import timedelta

from faststream_fastapi import FastStreamAPI

from reporting.adapters.feed_log import FeedLog
from reporting.adapters.stats_store import RedisStatsStore, StatsStore
from reporting.adapters.webhook_store import WebhookStore
from reporting.config import ReportingSettings
from reporting.entrypoints.http import stats_router
from reporting.entrypoints.subscribers import EventCounter, subscribe_everything
from reporting.entrypoints.webhooks import webhooks_router
from reporting.service_layer.webhooks import Webhooks, WebhookSupervisor
from stallkit.service import ServiceParts, build_service, lazy_app


def create_app(
    settings: ReportingSettings | None = None,
    *,
    parts: ServiceParts | None = None,
    store: StatsStore | None = None,
    feed: FeedLog | None = None,
    configure_logs: bool = True,
) -> FastStreamAPI:
    """Build the reporting service; ``parts`` and ``store`` default to the real ones.

    The district feeds' log defaults to the real one too, except with a swapped ``store`` (unit
    tests on in-memory parts), where there is none unless ``feed`` is given.
    """
    settings = settings or ReportingSettings()
    if parts is None:
        parts = ServiceParts.from_settings(settings)
    stats = store or RedisStatsStore(parts.redis, settings)
    if feed is None and store is None:
        feed = FeedLog(parts.redis, settings, timedelta(days=settings.feed_retention_days))
    subscribe_everything(parts.broker, settings, parts.redis, EventCounter(stats, feed))
    routers = [stats_router(stats)]
    background = []
    if feed is not None:  # webhooks deliver what the feed log holds
        hooks = WebhookStore(parts.redis, settings, log_length=settings.webhook_log_length)
        routers.append(webhooks_router(Webhooks(hooks, feed, settings)))
        background.append(WebhookSupervisor(hooks, feed, settings, parts.registry).start)
    app = build_service(
        parts,
        title="Reporting service 统计报表",
        description="Aggregates of every event, district feeds and reports.",
        routers=routers,
        background=background,
        configure_logs=configure_logs,
    )
    app._application.state.feed = feed
    return app


__getattr__ = lazy_app(create_app, globals())
