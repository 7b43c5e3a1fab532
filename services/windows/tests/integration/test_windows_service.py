"""The running windows service on a real broker and redis-server: emergency closures (and who
may order one), suspensions from the catalogue, late bookings' own deadlines, the read API.

The service clock is set to Friday 2026-11-20 18:00 local: the evening window (17:30-20:00) is
open, the late one (20:30-22:00) is still to come.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.catalogue import Category, District, Location, Market, MarketWindow
from contracts.envelope import RawEnvelope
from contracts.events import (
    EVENTS_BY_TYPE,
    BookingCreated,
    MarketChanged,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
)
from contracts.topics import DEAD_LETTER, WINDOWS
from stallkit.auth import Role
from stallkit.messaging import publish_event
from stalltest.tokens import bearer, dev_token
from windows.app import create_app
from windows.config import WindowsSettings

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
Reader = Callable[[str], Awaitable[Any]]

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # Friday 18:00 local
FRIDAY = date(2026, 11, 20)
SATURDAY = FRIDAY + timedelta(days=1)
MARKET = "XZ-07"
EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
    start=clock_time(17, 30), end=clock_time(20, 0),
)  # fmt: skip
LATE = MarketWindow(
    id="late", name_zh="晚市", name_en="Late", days=[1, 2, 3, 4, 5, 6, 7],
    start=clock_time(20, 30), end=clock_time(22, 0),
)  # fmt: skip


def market_changed() -> MarketChanged:
    market = Market(
        id=MARKET,
        district=District.XIANGZHOU,
        name_zh="香洲夜市",
        name_en="Xiangzhou Night Market",
        location=Location(lat=22.27, lon=113.57),
        zones=[Category.COOKED_FOOD],
        windows=[EVENING, LATE],
    )
    return MarketChanged(market_id=MARKET, market=market)


def token(role: Role, district: str | None = None) -> dict[str, str]:
    return bearer(dev_token(role, f"{role.value}-1", district=district, now=NOW))


@pytest.fixture
async def settings(windows_settings: WindowsSettings) -> WindowsSettings:
    return windows_settings.model_copy(
        update={"clock_offset_seconds": NOW.timestamp() - time.time()}
    )


async def started(
    settings: WindowsSettings, serve: Serve, publisher: KafkaBroker, eventually: Eventually
) -> httpx.AsyncClient:
    client = await serve(create_app(settings, configure_logs=False))
    await publish_event(publisher, settings, market_changed(), time=NOW - timedelta(days=1))
    admin = token(Role.ADMIN)

    async def evening_open() -> bool:
        r = await client.get(f"/v1/markets/{MARKET}/timeline", headers=admin)
        return r.status_code == 200 and [i["state"] for i in r.json()] == ["open", "scheduled"]

    await eventually(evening_open)
    return client


def late_booking(settings: WindowsSettings, booking_id: str, seconds: float) -> BookingCreated:
    """A booking made now (18:00 on the service clock) for the running evening window, whose
    own check-in deadline passes ``seconds`` from now."""
    service_now = datetime.fromtimestamp(time.time() + settings.clock_offset_seconds, tz=UTC)
    return BookingCreated(
        market_id=MARKET,
        booking_id=booking_id,
        vendor_id=f"vd_{booking_id}",
        stall_id=f"{MARKET}-A001",
        date=FRIDAY,
        window_id="evening",
        category=Category.COOKED_FOOD,
        starts_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        ends_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        priority=False,
        check_in_closes_at=service_now + timedelta(seconds=seconds),
    )


async def booking_deadline_passed(reader: Any) -> Any:
    """The first ``window.booking_check_in_deadline_passed`` on the windows topic."""
    kind = "window.booking_check_in_deadline_passed.v1"
    records = await reader.collect_until(lambda rs: any(t == kind for t, _ in parsed(rs)))
    return next(e for t, e in parsed(records) if t == kind)


def parsed(records: list[Any]) -> list[tuple[str, Any]]:
    found = []
    for record in records:
        envelope = RawEnvelope.from_bytes(record.value)
        found.append(
            (
                envelope.type.split(".markets.")[1],
                envelope.parse_data(EVENTS_BY_TYPE[envelope.type]),
            )
        )
    return found  # fmt: skip


async def test_an_emergency_closure_closes_the_open_window_at_once_and_shuts_the_day(
    settings: WindowsSettings,
    serve: Serve,
    publisher: KafkaBroker,
    eventually: Eventually,
    topic_reader: Reader,
) -> None:
    client = await started(settings, serve, publisher, eventually)
    path = f"/v1/markets/{MARKET}/closures"
    body = {"reason": "台风红色预警 Typhoon signal red"}

    # Only the market's own district office, or an administrator, may close it.
    for refused in (token(Role.PATROL, "xiangzhou"), token(Role.DISTRICT, "doumen")):
        r = await client.post(path, json=body, headers=refused)
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.post(path, json=body, headers=token(Role.DISTRICT, "doumen"))).json()[
        "code"
    ] == "other_district"

    office = token(Role.DISTRICT, "xiangzhou")
    r = await client.post(path, json=body, headers=office)
    assert r.status_code == 201, r.text
    closure = r.json()
    assert (closure["closed_window"], closure["shut_windows"]) == ("evening", ["late"])
    again = await client.post(path, json=body, headers=office)
    assert (again.status_code, again.json()["id"]) == (200, closure["id"])

    reader = await topic_reader(settings.topic(WINDOWS.name))

    def announced(rs: list[Any]) -> bool:
        return any(t == "market.suspended.v1" for t, _ in parsed(rs))

    events = parsed(await reader.collect_until(announced))
    after_open = [(t, e) for t, e in events if t != "window.opened.v1"]
    assert [t for t, _ in after_open] == [
        "window.check_in_deadline_passed.v1",  # 18:00, due as the service started
        "window.cancelled.v1",  # written with the plan; the timers below are claimed after it
        "window.closed.v1",
        "market.suspended.v1",
    ]
    cancelled, closed, suspended = (e for _, e in after_open[1:])
    assert (closed.window_id, closed.reason) == ("evening", body["reason"])
    assert (cancelled.window_id, cancelled.cause) == ("late", "closed")
    assert suspended.suspension_id == closure["id"]
    timeline = (await client.get(f"/v1/markets/{MARKET}/timeline", headers=office)).json()
    assert [i["state"] for i in timeline] == ["closed", "suspended"]

    # Reopened: the late window is back; the evening one stays closed.
    r = await client.delete(f"{path}/{closure['id']}", headers=office)
    assert r.status_code == 200
    assert r.json()["reopened_at"] is not None
    resumed = parsed(
        await reader.collect_until(lambda rs: any(t == "market.resumed.v1" for t, _ in parsed(rs)))
    )
    assert resumed[-1][1].suspension_id == closure["id"]
    timeline = (await client.get(f"/v1/markets/{MARKET}/timeline", headers=office)).json()
    assert [i["state"] for i in timeline] == ["closed", "scheduled"]
    assert (await client.delete(f"{path}/cl_0", headers=office)).status_code == 404


async def test_reads_are_scoped_to_the_callers_district(
    settings: WindowsSettings, serve: Serve, publisher: KafkaBroker, eventually: Eventually
) -> None:
    client = await started(settings, serve, publisher, eventually)
    timeline = f"/v1/markets/{MARKET}/timeline"

    assert (await client.get(timeline)).status_code == 401
    assert (await client.get(timeline, headers=token(Role.DISTRICT, "doumen"))).status_code == 403
    vendor = dev_token(Role.VENDOR, "vd_1", audience=["windows"], now=NOW)
    assert (await client.get(timeline, headers=bearer(vendor))).status_code == 403
    own = token(Role.DISTRICT, "xiangzhou")
    assert (await client.get(timeline, headers=own)).status_code == 200
    open_now = (await client.get("/v1/open-now", headers=own)).json()
    assert [(i["market_id"], i["window_id"]) for i in open_now] == [(MARKET, "evening")]
    other = await client.get("/v1/open-now?district=doumen", headers=own)
    assert other.status_code == 403
    patrol = await client.get("/v1/open-now?district=doumen", headers=token(Role.PATROL))
    assert patrol.json() == []

    window = {"from": NOW.isoformat(), "to": (NOW + timedelta(hours=3, minutes=1)).isoformat()}
    due = (await client.get("/v1/boundaries", params=window, headers=own)).json()
    assert [(d["window_id"], d["kind"]) for d in due] == [
        ("evening", "closing_soon"),
        ("evening", "closed"),
        ("late", "opened"),
        ("late", "check_in_deadline_passed"),
    ]
    # The evening window opened at 17:30 and was published when the service started at 18:00:
    # the lateness histogram says so.
    metrics = {
        line.rsplit(maxsplit=1)[0]: float(line.rsplit(maxsplit=1)[1])
        for line in (await client.get("/metrics")).text.splitlines()
        if line.startswith("windows_")
    }
    assert metrics['windows_timer_lateness_seconds_count{kind="opened"}'] == 1
    assert 1800 <= metrics['windows_timer_lateness_seconds_sum{kind="opened"}'] < 1900
    assert "windows_timers_due_unpublished" in metrics

    too_long = {"from": NOW.isoformat(), "to": (NOW + timedelta(days=9)).isoformat()}
    r = await client.get("/v1/boundaries", params=too_long, headers=own)
    assert (r.status_code, r.json()["code"]) == (422, "range_too_long")


async def test_suspensions_shut_their_dates_and_late_bookings_get_their_own_deadline(
    settings: WindowsSettings,
    serve: Serve,
    publisher: KafkaBroker,
    eventually: Eventually,
    topic_reader: Reader,
) -> None:
    client = await started(settings, serve, publisher, eventually)
    admin = token(Role.ADMIN)
    saturday = f"/v1/markets/{MARKET}/timeline?date={SATURDAY.isoformat()}"

    async def states() -> list[str]:
        return [i["state"] for i in (await client.get(saturday, headers=admin)).json()]

    declared = MarketSuspensionDeclared(
        market_id=MARKET,
        suspension_id="sp_typhoon",
        first_date=SATURDAY,
        last_date=SATURDAY,
        reason="台风",
    )
    await publish_event(publisher, settings, declared, time=NOW)
    assert await eventually(lambda: _equals(states(), ["suspended", "suspended"]))
    window = {"from": NOW.isoformat(), "to": (NOW + timedelta(days=2)).isoformat()}
    due = (await client.get("/v1/boundaries", params=window, headers=admin)).json()
    assert [d["kind"] for d in due if d["date"] == SATURDAY.isoformat()] == []
    assert [d["kind"] for d in due if d["date"] is None] == ["suspended", "resumed"]

    reader = await topic_reader(settings.topic(WINDOWS.name))
    cancelled = [
        e
        for t, e in parsed(
            await reader.collect_until(
                lambda rs: sum(t == "window.cancelled.v1" for t, _ in parsed(rs)) >= 2
            )
        )
        if t == "window.cancelled.v1"
    ]
    assert {(e.date, e.window_id, e.cause) for e in cancelled} == {
        (SATURDAY, "evening", "suspended"),
        (SATURDAY, "late", "suspended"),
    }

    lifted = MarketSuspensionLifted(
        market_id=MARKET,
        suspension_id="sp_typhoon",
        first_date=SATURDAY,
        last_date=SATURDAY,
        reopened_from=SATURDAY,
    )
    await publish_event(publisher, settings, lifted, time=NOW + timedelta(seconds=1))
    assert await eventually(lambda: _equals(states(), ["scheduled", "scheduled"]))

    # A booking made at 18:00 for the evening window may check in until 18:30: its own timer.
    booked = late_booking(settings, "bk_late", 3)
    await publish_event(publisher, settings, booked, time=NOW)
    deadline = await booking_deadline_passed(reader)
    assert (deadline.booking_id, deadline.deadline) == ("bk_late", booked.check_in_closes_at)


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def test_a_late_booking_read_before_its_market_is_kept_and_timed_when_the_market_arrives(
    settings: WindowsSettings,
    serve: Serve,
    publisher: KafkaBroker,
    eventually: Eventually,
    topic_reader: Reader,
    redis_client: Redis,
) -> None:
    """A new consumer group rebuilding from the topics, or a booking made right after its
    market was created, can reach windows before the market does: the booking waits for it
    (no retries holding up the consumer, no dead letter) and its own deadline still fires."""
    client = await serve(create_app(settings, configure_logs=False))
    reader = await topic_reader(settings.topic(WINDOWS.name))
    dead = await topic_reader(settings.topic(DEAD_LETTER.name))
    booked = late_booking(settings, "bk_before_market", 8)
    await publish_event(publisher, settings, booked, time=NOW)
    admin = token(Role.ADMIN)

    async def parked() -> bool:  # read and set aside, not retried
        redis_key = settings.key("win", "{" + MARKET + "}", "parked")
        return bool(await redis_client.hexists(redis_key, booked.booking_id))

    assert await eventually(parked)
    unknown = await client.get(f"/v1/markets/{MARKET}/timeline", headers=admin)
    assert unknown.status_code == 404
    await publish_event(publisher, settings, market_changed(), time=NOW - timedelta(days=1))
    deadline = await booking_deadline_passed(reader)
    assert (deadline.booking_id, deadline.deadline) == (
        booked.booking_id,
        booked.check_in_closes_at,
    )
    assert deadline.district == District.XIANGZHOU
    assert not await parked()
    dead_letters = await dead.collect_until(lambda rs: False, timeout=1.0)
    assert [r for r in dead_letters if booked.booking_id.encode() in r.value] == []
