"""Fixtures of the reporting tests: settings and a publisher (shared ones: stalltest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker

from reporting.config import ReportingSettings
from stallkit.messaging import ensure_topics, make_broker
from stalltest.plugin import Isolation


@pytest.fixture
async def reporting_settings(isolation: Isolation) -> ReportingSettings:
    """Settings pointing at the session's broker and Redis, with this test's prefixes."""
    settings = ReportingSettings(**{k.lower(): v for k, v in isolation.env().items()})
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    return settings


@pytest.fixture
async def publisher(reporting_settings: ReportingSettings) -> AsyncIterator[KafkaBroker]:
    """A started broker of the test side, to publish events the service consumes."""
    broker = make_broker(reporting_settings.model_copy(update={"service_name": "allocation"}))
    await broker.start()
    yield broker
    await broker.stop()
