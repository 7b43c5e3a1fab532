"""Fixtures of the inspection tests: settings and a publisher (shared ones: stalltest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker

from inspection.config import InspectionSettings
from stallkit.messaging import ensure_topics, make_broker
from stalltest.plugin import Isolation


@pytest.fixture
async def inspection_settings(isolation: Isolation) -> InspectionSettings:
    """Settings pointing at the session's broker and Redis, with this test's prefixes."""
    settings = InspectionSettings(**{k.lower(): v for k, v in isolation.env().items()})
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    return settings


@pytest.fixture
async def publisher(inspection_settings: InspectionSettings) -> AsyncIterator[KafkaBroker]:
    """A started broker of the test side, to publish events the service consumes."""
    broker = make_broker(inspection_settings.model_copy(update={"service_name": "allocation"}))
    await broker.start()
    yield broker
    await broker.stop()
