"""The edge of allocation's errors: domain codes become problem+json with a fixed status."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from allocation.domain.errors import CODES, IllegalTransition, Rejected, rejected
from allocation.entrypoints.problems import MESSAGES, install_problems, status_of

pytestmark = pytest.mark.unit

#: What clients see today for every code; a change here breaks them.
EXPECTED_STATUS = {
    "stall_taken": 409,
    "overlapping_booking": 409,
    "weekly_cap_reached": 409,
    "category_not_permitted": 403,
    "health_certificate_required": 403,
    "outside_booking_horizon": 422,
    "held_for_priority": 409,
    "vendor_suspended": 403,
    "market_suspended": 409,
    "window_not_found": 404,
    "stall_not_found": 404,
    "stall_unavailable": 409,
    "market_not_found": 404,
    "booking_not_found": 404,
    "vendor_not_found": 404,
    "idempotency_key_reused": 422,
    "idempotency_key_required": 400,
    "illegal_transition": 409,
    "check_in_closed": 409,
    "stall_code_invalid": 422,
    "stall_code_revoked": 422,
    "wrong_stall": 422,
    "phone_taken": 409,
    "invalid_credentials": 401,
    "too_many_attempts": 429,
    "window_passed": 409,
    "suspension_too_long": 422,
    "suspension_not_found": 404,
    "invalid_date_range": 422,
    "date_in_past": 422,
    "date_out_of_range": 422,
    "catalogue_conflict": 409,
}


def test_every_domain_code_has_messages_and_its_status() -> None:
    assert set(EXPECTED_STATUS) <= CODES
    for code in CODES:
        zh, en = MESSAGES[code]
        assert zh, code
        assert en, code
    for code, status in EXPECTED_STATUS.items():
        assert status_of(code) == status, code


def _app(error: Exception) -> FastAPI:
    app = FastAPI()
    install_problems(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return app


async def _get(app: FastAPI, language: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/fail", headers={"Accept-Language": language})


async def test_a_refusal_is_rendered_as_problem_json_with_its_extra_fields() -> None:
    app = _app(Rejected("vendor_suspended", suspended_until="2026-12-10T08:00:00+00:00"))
    english = await _get(app, "en")
    chinese = await _get(app, "zh-CN")
    assert english.status_code == 403
    assert english.headers["content-type"].startswith("application/problem+json")
    body = english.json()
    assert body["code"] == "vendor_suspended"
    assert body["status"] == 403
    assert body["title"] == "Booking suspended after repeated no-shows"
    assert body["suspended_until"] == "2026-12-10T08:00:00+00:00"
    assert chinese.json()["title"] == "因多次未到场，暂停预订资格"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(IllegalTransition("cannot cancel"), 409, "illegal_transition", id="subclass"),
        pytest.param(rejected("booking_not_found"), 404, "booking_not_found", id="factory"),
        pytest.param(Rejected("window_passed"), 409, "window_passed", id="default-409"),
    ],
)
async def test_subclasses_and_the_factory_render_the_same_way(
    error: Exception, status: int, code: str
) -> None:
    response = await _get(_app(error), "en")
    assert response.status_code == status
    assert response.json()["code"] == code
