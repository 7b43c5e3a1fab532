"""The reporting app with FastStream's in-memory test broker: every event in, counts out."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from pydantic import ValidationError

from contracts.catalogue import District
from contracts.envelope import Event
from contracts.events import (
    ALL_EVENTS,
    BookingCreated,
    MarketChanged,
    WindowOpened,
)
from contracts.examples import example_of
from contracts.topics import DLQ_REASON_HEADER, WINDOWS
from reporting.adapters.stats_store import InMemoryStatsStore
from reporting.app import create_app
from reporting.config import ReportingSettings
from stallkit.keys import Issuer
from stallkit.messaging import publish_event
from stalltest.plugin import unit_parts
from stalltest.tokens import fresh_key, jwks_of

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@dataclass
class Harness:
    settings: ReportingSettings
    broker: KafkaBroker
    client: httpx.AsyncClient
    dead_letters: list[KafkaMessage]

    async def publish(self, event: Event, event_id: str | None = None) -> None:
        await publish_event(self.broker, self.settings, event, time=NOW, event_id=event_id)

    async def stats(self, **query: str) -> dict[str, Any]:
        response = await self.client.get("/v1/stats", params=query)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def harness(fake_redis: Any) -> AsyncIterator[Harness]:
    settings = ReportingSettings()
    parts, dead_letters = unit_parts(settings, fake_redis)
    app = create_app(settings, parts=parts, store=InMemoryStatsStore(), configure_logs=False)
    async with TestKafkaBroker(parts.broker) as broker:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as client:
            yield Harness(settings, broker, client, dead_letters)


async def test_nothing_counted_yet(harness: Harness) -> None:
    assert await harness.stats() == {"events": {}, "total": 0}


async def test_every_event_type_of_every_topic_is_counted(harness: Harness) -> None:
    for event_cls in ALL_EVENTS:
        await harness.publish(example_of(event_cls))

    stats = await harness.stats()
    assert stats["events"] == {e.event_type(): 1 for e in ALL_EVENTS}
    assert stats["total"] == len(ALL_EVENTS)


async def test_a_redelivered_event_is_counted_once(harness: Harness) -> None:
    event = example_of(BookingCreated)
    await harness.publish(event, event_id="evt-1")
    await harness.publish(event, event_id="evt-1")
    await harness.publish(event, event_id="evt-2")

    assert (await harness.stats())["events"] == {BookingCreated.event_type(): 2}


async def test_counts_per_market_and_per_district(harness: Harness) -> None:
    market = example_of(MarketChanged)  # XZ-03 in xiangzhou
    opened = example_of(WindowOpened).model_copy(
        update={"market_id": "DM-01", "district": District.DOUMEN}
    )
    booking = example_of(BookingCreated)  # XZ-03, no district of its own
    for event in (market, opened, booking):
        await harness.publish(event)

    xiangzhou = await harness.stats(district="xiangzhou")
    assert xiangzhou["events"] == {MarketChanged.event_type(): 1, BookingCreated.event_type(): 1}
    assert (await harness.stats(district="doumen"))["total"] == 1
    assert (await harness.stats(market_id="XZ-03"))["total"] == 2
    assert (await harness.stats(market_id="DM-01"))["events"] == {WindowOpened.event_type(): 1}
    assert (await harness.stats())["total"] == 3


async def test_bad_scope_queries_are_validation_problems(harness: Harness) -> None:
    both = await harness.client.get(
        "/v1/stats", params={"district": "doumen", "market_id": "XZ-03"}
    )
    assert both.status_code == 422
    assert both.json()["code"] == "validation_failed"
    unknown = await harness.client.get("/v1/stats", params={"district": "atlantis"})
    assert unknown.status_code == 422


async def test_malformed_message_is_dead_lettered_and_counting_goes_on(harness: Harness) -> None:
    await harness.broker.publish(b"[1, 2, 3]", topic=harness.settings.topic(WINDOWS.name))
    await harness.publish(example_of(WindowOpened))

    assert len(harness.dead_letters) == 1
    assert harness.dead_letters[0].headers[DLQ_REASON_HEADER].startswith("bad envelope")
    assert (await harness.stats())["events"] == {WindowOpened.event_type(): 1}


def test_importing_the_app_module_builds_nothing() -> None:
    import reporting.app

    assert "app" not in vars(reporting.app)  # built on first access, e.g. by uvicorn


def test_settings_refuse_dev_secrets_in_prod() -> None:
    assert ReportingSettings().service_name == "reporting"
    with pytest.raises(ValidationError, match="STALL_TOKEN_JWKS"):
        ReportingSettings(stall_mode="prod")
    jwks = jwks_of(fresh_key(Issuer.ALLOCATION), fresh_key(Issuer.STAFF))
    assert ReportingSettings(stall_mode="prod", stall_token_jwks=jwks).mode == "prod"
