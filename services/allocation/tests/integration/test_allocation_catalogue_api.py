"""The public catalogue and its administration through the HTTP API.

Markets and their filters, availability as bookings come and go, stall codes (SVG, PNG, the
printable sheet, the public key that verifies them offline) and admin create/update of markets
and stalls.
"""

from __future__ import annotations

import base64
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from allocation.domain import stall_codes
from allocation.domain.model import PriorityGroup
from stallkit.auth import Role
from stalltest.allocation import MONDAY, TUESDAY, RunningAllocation, local, set_now

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
SATURDAY = MONDAY + timedelta(days=5)
TTL = 30 * 86400
XZ91_STALLS = [f"XZ-91-A{i:03d}" for i in range(1, 11)] + [f"XZ-91-C{i:03d}" for i in range(1, 11)]


def client(svc: RunningAllocation, sub: str, role: Role = Role.VENDOR) -> httpx.AsyncClient:
    """A client with a token minted on the current service clock."""
    return svc.client(svc.token(sub, role, ttl=TTL))


def admin(svc: RunningAllocation) -> httpx.AsyncClient:
    """An admin client."""
    return client(svc, "admin", Role.ADMIN)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem body, asserting status, media type and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def book(c: httpx.AsyncClient, stall: str, day: date) -> dict[str, Any]:
    """Book a stall's evening window; asserts it was created."""
    response = await c.post(
        "/v1/bookings",
        json={"stall_id": stall, "date": day.isoformat(), "window_id": "evening"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def window_on(svc: RunningAllocation, market: str, day: date) -> dict[str, Any]:
    """The only window of the market's availability on ``day``."""
    async with svc.client() as c:
        response = await c.get(f"/v1/markets/{market}/availability", params={"date": str(day)})
    assert response.status_code == 200, response.text
    assert response.json()["date"] == day.isoformat()
    windows: list[dict[str, Any]] = response.json()["windows"]
    assert len(windows) == 1, windows
    return windows[0]


async def market_ids(svc: RunningAllocation, **params: str) -> list[str]:
    """Ids of ``GET /v1/markets`` with the filters."""
    async with svc.client() as c:
        response = await c.get("/v1/markets", params=params)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()]


async def test_list_markets_with_district_and_category_filters(svc: RunningAllocation) -> None:
    async with svc.client() as c:
        everything = await c.get("/v1/markets")
    assert everything.status_code == 200
    summaries = {m["id"]: m for m in everything.json()}
    assert list(summaries) == ["DM-93", "XZ-91", "XZ-92"]
    assert {k: m["stall_count"] for k, m in summaries.items()} == {
        "DM-93": 5,
        "XZ-91": 20,
        "XZ-92": 10,
    }
    assert summaries["XZ-91"]["district"] == "xiangzhou"
    assert [w["id"] for w in summaries["DM-93"]["windows"]] == ["morning"]

    assert await market_ids(svc, district="xiangzhou") == ["XZ-91", "XZ-92"]
    assert await market_ids(svc, district="doumen") == ["DM-93"]
    assert await market_ids(svc, district="hengqin") == []
    assert await market_ids(svc, category="cooked_food") == ["XZ-91"]
    assert await market_ids(svc, category="daily_goods") == ["XZ-91", "XZ-92"]
    assert await market_ids(svc, category="fresh_produce") == ["DM-93"]
    assert await market_ids(svc, category="crafts_culture") == []
    assert await market_ids(svc, district="xiangzhou", category="cooked_food") == ["XZ-91"]
    assert await market_ids(svc, district="doumen", category="cooked_food") == []


async def test_open_now_follows_the_service_clock(svc: RunningAllocation) -> None:
    set_now(svc.clock, local(MONDAY, 12, 0))
    assert await market_ids(svc, open_now="true") == []
    assert await market_ids(svc, open_now="false") == ["DM-93", "XZ-91", "XZ-92"]

    set_now(svc.clock, local(MONDAY, 18, 0))  # evening 17:30-22:30 runs, late starts at 19:00
    assert await market_ids(svc, open_now="true") == ["XZ-91"]
    assert await market_ids(svc, open_now="false") == ["DM-93", "XZ-92"]
    async with svc.client() as c:
        detail = await c.get("/v1/markets/XZ-91")
    assert detail.json()["open_now"] is True

    set_now(svc.clock, local(MONDAY, 19, 30))
    assert await market_ids(svc, open_now="true") == ["XZ-91", "XZ-92"]
    assert await market_ids(svc, open_now="true", district="doumen") == []

    set_now(svc.clock, local(SATURDAY, 7, 0))  # the weekend morning market
    assert await market_ids(svc, open_now="true") == ["DM-93"]


async def test_market_detail_and_market_not_found(svc: RunningAllocation) -> None:
    async with svc.client() as c:
        detail = await c.get("/v1/markets/XZ-92")
        missing = await c.get("/v1/markets/ZZ-00")
        missing_availability = await c.get("/v1/markets/ZZ-00/availability")
    assert detail.status_code == 200
    body = detail.json()
    assert body["id"] == "XZ-92"
    assert body["zones"] == ["daily_goods"]
    assert body["stall_count"] == 10
    assert body["open_now"] is False
    assert [(w["id"], w["start"], w["end"]) for w in body["windows"]] == [
        ("late", "19:00:00", "23:00:00")
    ]
    problem(missing, 404, "market_not_found")
    problem(missing_availability, 404, "market_not_found")


async def test_availability_counts_follow_bookings_and_the_priority_hold(
    svc: RunningAllocation,
) -> None:
    # TUESDAY's hold (6 of 20 stalls) lasts until MONDAY 18:00.
    before = await window_on(svc, "XZ-91", TUESDAY)
    assert before["window_id"] == "evening"
    assert (before["total"], before["booked"], before["free"]) == (20, 0, 20)
    assert before["held_for_priority"] == 6
    assert before["free_stalls"] == XZ91_STALLS
    assert before["suspended_reason"] is None

    standard, _ = await svc.vendor()
    priority, _ = await svc.vendor(priority=PriorityGroup.LAID_OFF)
    async with client(svc, standard) as c:
        mine = await book(c, "XZ-91-C001", TUESDAY)
    after_standard = await window_on(svc, "XZ-91", TUESDAY)
    assert (after_standard["booked"], after_standard["free"]) == (1, 19)
    assert after_standard["held_for_priority"] == 6
    assert "XZ-91-C001" not in after_standard["free_stalls"]

    async with client(svc, priority) as c:
        await book(c, "XZ-91-C002", TUESDAY)
    after_priority = await window_on(svc, "XZ-91", TUESDAY)
    assert (after_priority["booked"], after_priority["free"]) == (2, 18)
    assert after_priority["held_for_priority"] == 5  # a priority vendor used one held stall
    assert len(after_priority["free_stalls"]) == 18

    async with client(svc, standard) as c:
        cancelled = await c.delete(f"/v1/bookings/{mine['id']}")
    assert cancelled.status_code == 200
    after_cancel = await window_on(svc, "XZ-91", TUESDAY)
    assert (after_cancel["booked"], after_cancel["free"]) == (1, 19)
    assert "XZ-91-C001" in after_cancel["free_stalls"]

    # Other dates and markets are untouched; today's hold ended yesterday at 18:00.
    today = await window_on(svc, "XZ-91", MONDAY)
    assert (today["booked"], today["free"], today["held_for_priority"]) == (0, 20, 0)
    async with svc.client() as c:
        default = await c.get("/v1/markets/XZ-91/availability")
        weekday_morning = await c.get(
            "/v1/markets/DM-93/availability", params={"date": str(MONDAY)}
        )
    assert default.json()["date"] == MONDAY.isoformat()
    assert weekday_morning.json()["windows"] == []
    saturday = await window_on(svc, "DM-93", SATURDAY)
    assert (saturday["window_id"], saturday["total"], saturday["held_for_priority"]) == (
        "morning",
        5,
        1,
    )

    set_now(svc.clock, local(MONDAY, 18, 0))
    released = await window_on(svc, "XZ-91", TUESDAY)
    assert released["held_for_priority"] == 0
    assert released["free"] == 19


async def test_availability_shows_a_suspended_date(svc: RunningAllocation) -> None:
    reason = "台风红色预警 Typhoon signal red"
    async with admin(svc) as a:
        declared = await a.post(
            "/v1/admin/markets/XZ-91/suspensions",
            json={"first_date": str(TUESDAY), "last_date": str(WEDNESDAY), "reason": reason},
        )
    assert declared.status_code == 201, declared.text
    assert declared.json()["market_id"] == "XZ-91"
    for day in (TUESDAY, WEDNESDAY):
        suspended = await window_on(svc, "XZ-91", day)
        assert suspended["suspended_reason"] == reason
        # Vendors see nothing to book on a suspended date.
        assert (suspended["free"], suspended["free_stalls"], suspended["held_for_priority"]) == (
            0,
            [],
            0,
        )
    assert (await window_on(svc, "XZ-91", MONDAY))["suspended_reason"] is None
    assert (await window_on(svc, "XZ-92", TUESDAY))["suspended_reason"] is None


async def test_stall_code_images_and_the_public_key(svc: RunningAllocation) -> None:
    async with admin(svc) as a:
        svg = await a.get("/v1/stalls/XZ-91-C001/code.svg")
        png = await a.get("/v1/stalls/XZ-91-C001/code.png")
        code = await a.get("/v1/admin/stalls/XZ-91-C001/code")
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        as_vendor = await c.get("/v1/stalls/XZ-91-C001/code.svg")
    async with svc.client() as c:
        anonymous = await c.get("/v1/stalls/XZ-91-C001/code.svg")
        key = await c.get("/v1/stall-codes/public-key")

    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    problem(as_vendor, 403, "forbidden")
    problem(anonymous, 401, "unauthorized")

    assert key.status_code == 200
    assert key.json()["algorithm"] == "Ed25519"
    raw = base64.b64decode(key.json()["public_key"])
    assert len(raw) == 32
    public_key = Ed25519PublicKey.from_public_bytes(raw)
    verified = stall_codes.verify(public_key, code.json()["code"])
    assert verified == stall_codes.StallCode("XZ-91-C001", 1)
    assert stall_codes.verify(public_key, code.json()["code"].replace("C001", "C002")) is None


async def test_printable_code_sheet_lists_every_active_code(svc: RunningAllocation) -> None:
    async with admin(svc) as a:
        sheet = await a.get("/v1/admin/markets/XZ-91/codes")
        revoked = await a.delete("/v1/admin/stalls/XZ-91-A001/code")
        after = await a.get("/v1/admin/markets/XZ-91/codes")
        missing = await a.get("/v1/admin/markets/ZZ-00/codes")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/html")
    for stall in XZ91_STALLS:
        assert stall in sheet.text
    assert "XZ-92-C001" not in sheet.text
    assert sheet.text.count("<svg") == 20
    assert "测试夜市" in sheet.text

    assert revoked.status_code == 204
    assert "XZ-91-A001" not in after.text
    assert after.text.count("<svg") == 19
    problem(missing, 404, "market_not_found")


NEW_MARKET = {
    "id": "XZ-94",
    "district": "xiangzhou",
    "name_zh": "新夜市",
    "name_en": "New Night Market",
    "address_zh": "香洲区测试路",
    "location": {"lat": 22.27, "lon": 113.57},
    "zones": ["daily_goods", "services"],
    "windows": [
        {
            "id": "evening",
            "name_zh": "夜市",
            "name_en": "Evening",
            "days": [1, 2, 3, 4, 5, 6, 7],
            "start": "17:30",
            "end": "22:30",
        }
    ],
}
NEW_STALL = {"id": "XZ-94-S001", "market_id": "XZ-94", "category": "services", "active": True}


async def test_admin_creates_a_market_and_a_stall_then_vendors_book_it(
    svc: RunningAllocation,
) -> None:
    async with admin(svc) as a:
        created = await a.put("/v1/admin/markets/XZ-94", json=NEW_MARKET)
        unchanged = await a.put("/v1/admin/markets/XZ-94", json=NEW_MARKET)
        stall = await a.put("/v1/admin/stalls/XZ-94-S001", json=NEW_STALL)
        stall_again = await a.put("/v1/admin/stalls/XZ-94-S001", json=NEW_STALL)
        renamed = await a.put(
            "/v1/admin/markets/XZ-94", json={**NEW_MARKET, "name_en": "Renamed Night Market"}
        )
    assert created.status_code == 201, created.text
    assert unchanged.status_code == 200
    assert stall.status_code == 201, stall.text
    assert stall_again.status_code == 200
    assert renamed.status_code == 200

    assert await market_ids(svc) == ["DM-93", "XZ-91", "XZ-92", "XZ-94"]
    assert await market_ids(svc, category="services") == ["XZ-94"]
    async with svc.client() as c:
        detail = await c.get("/v1/markets/XZ-94")
    assert detail.json()["stall_count"] == 1
    assert detail.json()["name_en"] == "Renamed Night Market"
    window = await window_on(svc, "XZ-94", MONDAY)
    assert window["free_stalls"] == ["XZ-94-S001"]

    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        booking = await book(c, "XZ-94-S001", MONDAY)
    assert booking["market_id"] == "XZ-94"
    assert (await window_on(svc, "XZ-94", MONDAY))["booked"] == 1


async def test_catalogue_conflicts(svc: RunningAllocation) -> None:
    cooked_in_goods_market = {"id": "XZ-92-A001", "market_id": "XZ-92", "category": "cooked_food"}
    async with admin(svc) as a:
        outside_zones = await a.put("/v1/admin/stalls/XZ-92-A001", json=cooked_in_goods_market)
        path_differs = await a.put(
            "/v1/admin/stalls/XZ-92-C009", json={**cooked_in_goods_market, "category": "services"}
        )
        market_differs = await a.put("/v1/admin/markets/XZ-95", json=NEW_MARKET)
        unknown_market = await a.put(
            "/v1/admin/stalls/XZ-95-C001",
            json={"id": "XZ-95-C001", "market_id": "XZ-95", "category": "daily_goods"},
        )
        reimport_stall = await a.put(
            "/v1/admin/stalls/XZ-92-C001",
            json={"id": "XZ-92-C001", "market_id": "XZ-92", "category": "daily_goods"},
        )
    problem(outside_zones, 409, "catalogue_conflict")
    problem(path_differs, 409, "catalogue_conflict")
    problem(market_differs, 409, "catalogue_conflict")
    problem(unknown_market, 404, "market_not_found")
    assert reimport_stall.status_code == 200  # unchanged, not created

    async with svc.client() as c:
        detail = await c.get("/v1/markets/XZ-92")
        ids = await c.get("/v1/markets")
    assert detail.json()["stall_count"] == 10
    assert "XZ-95" not in [m["id"] for m in ids.json()]
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        refused = await c.post(
            "/v1/bookings",
            json={"stall_id": "XZ-92-A001", "date": str(MONDAY), "window_id": "late"},
            headers={"Idempotency-Key": "k"},
        )
    problem(refused, 404, "stall_not_found")
