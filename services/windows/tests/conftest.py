"""Fixtures of the windows tests: settings and a publisher (shared ones: stalltest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.kafka import KafkaBroker

from stallkit.messaging import ensure_topics, make_broker
from stalltest.plugin import Isolation
from windows.config import WindowsSettings


@pytest.fixture
async def windows_settings(isolation: Isolation) -> WindowsSettings:
    """Settings pointing at the session's broker and Redis, with this test's prefixes."""
    settings = WindowsSettings(**{k.lower(): v for k, v in isolation.env().items()})
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    return settings


@pytest.fixture
async def publisher(windows_settings: WindowsSettings) -> AsyncIterator[KafkaBroker]:
    """A started broker of the test side, to publish events the service consumes."""
    broker = make_broker(windows_settings.model_copy(update={"service_name": "allocation"}))
    await broker.start()
    yield broker
    await broker.stop()
