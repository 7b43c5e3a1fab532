"""Clock, tokens, settings and problem+json: the pieces every service relies on."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from stallkit.clock import Clock, local_datetime
from stallkit.problems import ProblemError, install_problem_handlers
from stallkit.settings import CommonSettings

pytestmark = pytest.mark.unit


def test_clock_offset_and_speed() -> None:
    anchor = time.time()
    clock = Clock(offset_seconds=3600, speed=60, anchor=anchor)
    first = clock.timestamp()
    assert first - anchor == pytest.approx(3600, abs=5)
    time.sleep(0.05)
    # 50 ms real time is 3 s of service time at 60x.
    assert clock.timestamp() - first == pytest.approx(3.0, abs=1.5)
    assert clock.real_seconds_for(60) == pytest.approx(1.0)


def test_local_datetime_is_shanghai_time() -> None:
    when = local_datetime(datetime(2026, 12, 7).date(), 17 * 60 + 30)
    assert when.astimezone(UTC) == datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def test_settings_prefixes_isolate_topics_and_keys() -> None:
    settings = CommonSettings(topic_prefix="t1.", redis_prefix="t1:")
    assert settings.topic("markets.bookings.v1") == "t1.markets.bookings.v1"
    assert settings.key("a", "{b}", "c") == "t1:a:{b}:c"


class _Body(BaseModel):
    n: int


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/thing")
    async def thing(body: _Body) -> dict[str, int]:
        if body.n < 0:
            raise ProblemError("forbidden", 403, "negative")
        if body.n == 0:
            raise RuntimeError("boom")
        return {"n": body.n}

    return app


async def test_errors_are_problem_json_in_chinese_or_english() -> None:
    transport = httpx.ASGITransport(_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        zh = await client.post("/thing", json={"n": "x"})
        en = await client.post(
            "/thing", json={"n": "x"}, headers={"Accept-Language": "en-GB,en;q=0.9"}
        )
        prefers_zh = await client.post(
            "/thing", json={"n": -1}, headers={"Accept-Language": "en;q=0.5,zh"}
        )
        crash = await client.post("/thing", json={"n": 0})
        missing = await client.get("/nowhere", headers={"Accept-Language": "en"})
    for response in (zh, en, prefers_zh, crash, missing):
        assert response.headers["content-type"] == "application/problem+json"
    assert (zh.status_code, zh.json()["code"]) == (422, "validation_failed")
    assert zh.json()["title"] == "请求内容不符合要求"
    assert en.json()["title"] == "The request is not valid"
    assert en.json()["errors"][0]["loc"] == ["body", "n"]
    assert (prefers_zh.status_code, prefers_zh.json()["code"]) == (403, "forbidden")
    assert prefers_zh.json()["title"] == "无权执行此操作"
    assert (crash.status_code, crash.json()["code"]) == (500, "internal_error")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
