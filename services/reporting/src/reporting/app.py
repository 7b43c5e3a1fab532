"""Composition root of the reporting service: settings, Redis, Kafka, routes, subscribers.

``uvicorn reporting.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the store or the parts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import APIRouter
from faststream_fastapi import FastStreamAPI

from contracts.catalogue import District
from reporting.adapters.facts_store import FactsStore
from reporting.adapters.feed_log import FeedLog
from reporting.adapters.stats_store import RedisStatsStore, StatsStore
from reporting.adapters.webhook_store import WebhookStore
from reporting.config import ReportingSettings
from reporting.entrypoints.dashboard import dashboard_router
from reporting.entrypoints.feeds import feed_router
from reporting.entrypoints.http import stats_router
from reporting.entrypoints.reports import reports_router
from reporting.entrypoints.subscribers import EventCounter, subscribe_everything
from reporting.entrypoints.webhooks import webhooks_router
from reporting.service_layer.facts import FactsProjector
from reporting.service_layer.fanout import BLOCK_MS, FeedFanout
from reporting.service_layer.reports import Reports
from reporting.service_layer.webhooks import Webhooks, WebhookSupervisor
from stallkit.redis_client import redis_client
from stallkit.service import Background, ServiceParts, build_service, lazy_app


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
    facts = FactsStore(parts.redis, settings, settings.report_retention_days)
    counter = EventCounter(stats, feed, FactsProjector(facts) if store is None else None)
    subscribe_everything(parts.broker, settings, parts.redis, counter)
    routers = [
        stats_router(stats),
        reports_router(Reports(facts, parts.clock)),
        dashboard_router(),
    ]
    background: list[Background] = []
    if feed is not None:  # webhooks deliver what the feed log holds
        hooks = WebhookStore(parts.redis, settings, log_length=settings.webhook_log_length)
        routers.append(webhooks_router(Webhooks(hooks, feed, settings)))
        background.append(WebhookSupervisor(hooks, feed, settings, parts.registry).start)
        sse, start_fanout = live_feeds(settings, parts, feed)
        routers.append(sse)
        background.append(start_fanout)
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


def live_feeds(
    settings: ReportingSettings, parts: ServiceParts, feed: FeedLog
) -> tuple[APIRouter, Background]:
    """The SSE route of the district feeds and its fan-out (started and stopped with the app).

    The fan-out's readers block on Redis (XREAD BLOCK), one connection per feed in use, so they
    have their own small pool rather than holding the service's connections.
    """
    reader_redis = redis_client(
        settings.redis_url, len(District) + 2, command_timeout=BLOCK_MS / 1000 + 5
    )  # one Redis, or the node of the feeds' slot on a Redis Cluster
    fanout = FeedFanout(
        FeedLog(reader_redis, settings, feed.retention),
        queue_size=settings.feed_queue_size,
        registry=parts.registry,
    )

    async def start() -> Callable[[], Awaitable[None]]:
        async def stop() -> None:
            await fanout.stop()
            await reader_redis.aclose()

        return stop

    return feed_router(feed, fanout, settings), start


__getattr__ = lazy_app(create_app, globals())
