"""The inspection app with FastStream's in-memory test broker: bookings in, expectations out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.events import (
    BookingCancelled,
    BookingCreated,
    BookingNoShow,
    BookingSuspendedByMarket,
    MarketChanged,
    StallChanged,
)
from contracts.topics import BOOKINGS, DLQ_REASON_HEADER
from inspection.adapters.expectation_store import InMemoryExpectationStore
from inspection.app import create_app
from inspection.config import InspectionSettings
from inspection.domain.expected import StallFacts
from stallkit.auth import Role
from stallkit.messaging import publish_event
from stalltest.plugin import unit_parts
from stalltest.tokens import bearer, dev_token

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
DAY = date(2026, 11, 23)
URL = "/v1/stalls/XZ-03-A017/expected"
QUERY = {"date": DAY.isoformat(), "window_id": "evening"}


@dataclass
class Harness:
    settings: InspectionSettings
    broker: KafkaBroker
    client: httpx.AsyncClient
    store: InMemoryExpectationStore
    dead_letters: list[KafkaMessage]

    def token(self, role: Role) -> dict[str, str]:
        # For inspection whatever the role, so that the role check itself is what answers.
        return bearer(dev_token(role, f"{role}-1", now=NOW, audience=["inspection"]))

    async def publish(self, event: Any) -> None:
        await publish_event(self.broker, self.settings, event, time=NOW)

    async def expected(self, role: Role = Role.PATROL, **query: str) -> httpx.Response:
        return await self.client.get(URL, params=query or QUERY, headers=self.token(role))


@pytest.fixture
async def harness(fake_redis: Any) -> AsyncIterator[Harness]:
    settings = InspectionSettings(
        stall_clock_offset_seconds=(NOW - datetime.now(UTC)).total_seconds()
    )
    parts, dead_letters = unit_parts(settings, fake_redis)
    store = InMemoryExpectationStore()
    app = create_app(settings, parts=parts, store=store, configure_logs=False)
    async with TestKafkaBroker(parts.broker) as broker:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://inspection") as client:
            yield Harness(settings, broker, client, store, dead_letters)


def created(booking_id: str = "bk_1", vendor_id: str = "vd_1") -> BookingCreated:
    return BookingCreated(
        market_id="XZ-03",
        booking_id=booking_id,
        vendor_id=vendor_id,
        stall_id="XZ-03-A017",
        date=DAY,
        window_id="evening",
        category=Category.COOKED_FOOD,
        starts_at=datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
        ends_at=datetime(2026, 11, 23, 14, 30, tzinfo=UTC),
        priority=False,
    )


def booking_fields(booking_id: str = "bk_1") -> dict[str, Any]:
    return {
        "market_id": "XZ-03",
        "booking_id": booking_id,
        "vendor_id": "vd_1",
        "stall_id": "XZ-03-A017",
        "date": DAY,
        "window_id": "evening",
    }


async def test_a_booking_is_expected_at_its_stall(harness: Harness) -> None:
    market = Market(
        id="XZ-03",
        district=District.XIANGZHOU,
        name_zh="拱北夜市",
        name_en="Gongbei Night Market",
        location=Location(lat=22.27, lon=113.57),
        zones=[Category.COOKED_FOOD],
        windows=[
            MarketWindow(
                id="evening",
                name_zh="夜市",
                name_en="Evening",
                days=[1],
                start=time(17, 30),
                end=time(22, 30),
            )
        ],
    )
    await harness.publish(MarketChanged(market_id="XZ-03", market=market))
    await harness.publish(created())

    response = await harness.expected()
    assert response.status_code == 200
    body = response.json()
    assert body["vendor_id"] == "vd_1"
    assert body["booking_id"] == "bk_1"
    assert body["district"] == "xiangzhou"
    assert body["starts_at"] == "2026-11-23T09:30:00Z"
    assert (await harness.expected(Role.ADMIN)).status_code == 200


async def test_date_defaults_to_today_on_the_service_clock(harness: Harness) -> None:
    # NOW is 2026-11-22 10:00 in Asia/Shanghai.
    await harness.publish(created().model_copy(update={"date": date(2026, 11, 22)}))
    assert (await harness.expected(window_id="evening")).json()["booking_id"] == "bk_1"


@pytest.mark.parametrize(
    "end",
    [
        BookingCancelled(**booking_fields(), late=False),
        BookingSuspendedByMarket(**booking_fields(), reason="台风红色预警"),
        BookingNoShow(**booking_fields(), no_shows_in_period=1),
    ],
    ids=["cancelled", "suspended", "no_show"],
)
async def test_an_ended_booking_is_no_longer_expected(harness: Harness, end: Any) -> None:
    await harness.publish(created())
    await harness.publish(end)

    response = await harness.expected()
    assert response.status_code == 404
    assert response.json()["code"] == "no_booking"
    # A replay of the creation does not bring the booking back.
    await harness.publish(created())
    assert (await harness.expected()).status_code == 404


async def test_end_of_an_older_booking_keeps_the_newer_one(harness: Harness) -> None:
    await harness.publish(created("bk_1", "vd_1"))
    await harness.publish(BookingNoShow(**booking_fields("bk_1"), no_shows_in_period=1))
    await harness.publish(created("bk_2", "vd_2"))
    await harness.publish(BookingCancelled(**booking_fields("bk_1"), late=True))

    assert (await harness.expected()).json()["vendor_id"] == "vd_2"


async def test_stall_changes_are_kept_for_patrols(harness: Harness) -> None:
    stall = Stall(id="XZ-03-A017", market_id="XZ-03", category=Category.COOKED_FOOD, active=False)
    await harness.publish(StallChanged(market_id="XZ-03", stall=stall))
    assert await harness.store.get_stall("XZ-03", "XZ-03-A017") == StallFacts(
        "XZ-03-A017", "XZ-03", "cooked_food", False
    )


async def test_only_patrols_and_admins_may_ask(harness: Harness) -> None:
    anonymous = await harness.client.get(URL, params=QUERY)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"
    vendor = await harness.expected(Role.VENDOR)
    assert vendor.status_code == 403, vendor.text
    assert vendor.json()["code"] == "forbidden"
    assert (await harness.expected(Role.DISTRICT)).status_code == 403
    login_token = bearer(dev_token(Role.VENDOR, "vd_1", now=NOW))  # as allocation issues it
    vendor_at_login = await harness.client.get(URL, params=QUERY, headers=login_token)
    assert (vendor_at_login.status_code, vendor_at_login.json()["code"]) == (403, "forbidden")
    windows_only = bearer(dev_token(Role.VENDOR, "vd_1", now=NOW, audience=["windows"]))
    not_for_us = await harness.client.get(URL, params=QUERY, headers=windows_only)
    assert not_for_us.status_code == 401
    assert not_for_us.json()["code"] == "wrong_audience"


async def test_bad_stall_or_window_is_a_validation_problem(harness: Harness) -> None:
    headers = harness.token(Role.PATROL)
    bad_stall = await harness.client.get("/v1/stalls/nope/expected", params=QUERY, headers=headers)
    assert bad_stall.status_code == 422
    bad_window = await harness.expected(date=DAY.isoformat(), window_id="Evening!")
    assert bad_window.status_code == 422
    assert bad_window.json()["code"] == "validation_failed"


async def test_no_booking_speaks_english_when_asked(harness: Harness) -> None:
    headers = {**harness.token(Role.PATROL), "Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"}
    response = await harness.client.get(URL, params=QUERY, headers=headers)
    assert response.status_code == 404
    assert response.json()["title"] == "No booking for this stall and window"


async def test_invalid_booking_event_is_dead_lettered_and_consumption_goes_on(
    harness: Harness,
) -> None:
    envelope = (
        b'{"id": "e1", "source": "/services/allocation", "type": '
        b'"cn.gov.zhuhai.markets.booking.created.v1", "time": "2026-11-22T02:00:00Z", '
        b'"subject": "bk_x", "marketid": "XZ-03", "data": {"market_id": "XZ-03"}}'
    )
    await harness.broker.publish(envelope, topic=harness.settings.topic(BOOKINGS.name))
    await harness.publish(created())

    assert len(harness.dead_letters) == 1
    reason = harness.dead_letters[0].headers[DLQ_REASON_HEADER]
    assert reason.startswith("bad cn.gov.zhuhai.markets.booking.created.v1")
    assert (await harness.expected()).status_code == 200


def test_importing_the_app_module_builds_nothing() -> None:
    import inspection.app

    assert "app" not in vars(inspection.app)  # built on first access, e.g. by uvicorn
