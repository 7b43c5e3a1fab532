"""The windows app with FastStream's in-memory test broker and a real Redis: catalogue in,
schedule out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from pydantic import ValidationError
from redis.asyncio import Redis

from contracts.catalogue import Category, District, Location, Market, MarketWindow
from contracts.events import MarketChanged, ScheduleChanged
from contracts.topics import CATALOGUE, DLQ_REASON_HEADER
from stallkit.keys import Issuer
from stallkit.messaging import publish_event
from stalltest.plugin import unit_parts
from stalltest.tokens import fresh_key, jwks_of
from windows.adapters.schedule_store import InMemoryScheduleStore
from windows.app import create_app
from windows.config import WindowsSettings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def market(*windows: MarketWindow, market_id: str = "XZ-03") -> Market:
    return Market(
        id=market_id,
        district=District.XIANGZHOU,
        name_zh="拱北夜市便民点",
        name_en="Gongbei Night Market",
        location=Location(lat=22.2707, lon=113.5767),
        zones=[Category.COOKED_FOOD],
        windows=list(windows),
    )


EVENING = MarketWindow(
    id="evening",
    name_zh="夜市",
    name_en="Evening",
    days=[5, 6, 7],
    start=time(17, 30),
    end=time(22, 30),
)
MORNING = MarketWindow(
    id="morning", name_zh="早市", name_en="Morning", days=[6], start=time(6), end=time(10)
)


@dataclass
class Harness:
    settings: WindowsSettings
    broker: KafkaBroker
    client: httpx.AsyncClient
    dead_letters: list[KafkaMessage]


@pytest.fixture
async def harness(windows_settings: WindowsSettings) -> AsyncIterator[Harness]:
    settings = windows_settings
    parts, dead_letters = unit_parts(settings, Redis.from_url(settings.redis_url))
    app = create_app(settings, parts=parts, store=InMemoryScheduleStore(), configure_logs=False)

    async with TestKafkaBroker(parts.broker) as broker:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://windows") as client:
            yield Harness(settings, broker, client, dead_letters)


async def test_market_change_sets_the_schedule(harness: Harness) -> None:
    event = MarketChanged(market_id="XZ-03", market=market(EVENING))
    await publish_event(harness.broker, harness.settings, event, time=NOW)

    response = await harness.client.get("/v1/markets/XZ-03/schedule")
    assert response.status_code == 200
    body = response.json()
    assert body["district"] == "xiangzhou"
    assert [w["id"] for w in body["windows"]] == ["evening"]
    assert body["windows"][0]["start"] == "17:30:00"


async def test_schedule_change_replaces_windows(harness: Harness) -> None:
    await publish_event(
        harness.broker,
        harness.settings,
        MarketChanged(market_id="XZ-03", market=market(EVENING)),
        time=NOW,
    )
    change = ScheduleChanged(market_id="XZ-03", windows=[EVENING, MORNING])
    await publish_event(harness.broker, harness.settings, change, time=NOW + timedelta(minutes=1))
    stale = ScheduleChanged(market_id="XZ-03", windows=[MORNING])
    await publish_event(harness.broker, harness.settings, stale, time=NOW - timedelta(minutes=1))

    body = (await harness.client.get("/v1/markets/XZ-03/schedule")).json()
    assert [w["id"] for w in body["windows"]] == ["evening", "morning"]
    assert body["district"] == "xiangzhou"


async def test_unknown_market_is_a_problem_in_the_callers_language(harness: Harness) -> None:
    response = await harness.client.get("/v1/markets/XZ-99/schedule")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "market_not_found"
    assert response.json()["title"] == "找不到该市场"

    english = await harness.client.get(
        "/v1/markets/XZ-99/schedule", headers={"Accept-Language": "en"}
    )
    assert english.json()["title"] == "Market not found"


async def test_malformed_market_id_is_a_validation_problem(harness: Harness) -> None:
    response = await harness.client.get("/v1/markets/not-a-market/schedule")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


async def test_malformed_message_is_dead_lettered_and_consumption_goes_on(harness: Harness) -> None:
    await harness.broker.publish(b"{not json", topic=harness.settings.topic(CATALOGUE.name))
    await publish_event(
        harness.broker,
        harness.settings,
        MarketChanged(market_id="XZ-03", market=market(EVENING)),
        time=NOW,
    )

    assert len(harness.dead_letters) == 1
    assert "bad envelope" in harness.dead_letters[0].headers[DLQ_REASON_HEADER]
    assert (await harness.client.get("/v1/markets/XZ-03/schedule")).status_code == 200


async def test_ops_endpoints_answer(harness: Harness) -> None:
    assert (await harness.client.get("/healthz")).json() == {"status": "ok", "service": "windows"}
    spec = (await harness.client.get("/openapi.json")).json()
    assert "/v1/markets/{market_id}/schedule" in spec["paths"]


def test_importing_the_app_module_builds_nothing() -> None:
    import windows.app

    assert "app" not in vars(windows.app)  # built on first access, e.g. by uvicorn


def test_settings_read_their_prefix_and_refuse_dev_secrets_in_prod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WINDOWS_SERVICE_NAME", "windows-replica")
    assert WindowsSettings().service_name == "windows-replica"
    with pytest.raises(ValidationError, match="STALL_TOKEN_JWKS"):
        WindowsSettings(stall_mode="prod")
    jwks = jwks_of(fresh_key(Issuer.ALLOCATION), fresh_key(Issuer.STAFF))
    prod = WindowsSettings(stall_mode="prod", stall_token_jwks=jwks)
    assert prod.mode == "prod"
