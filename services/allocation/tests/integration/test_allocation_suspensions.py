"""Market suspensions: declared once per Idempotency-Key or id, lifted one at a time, no echo.

The service clock starts at 10:00 local on ``MONDAY``; the administrator acts through the API,
windows through events on the real broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from allocation.service_layer.markets import DeclareSuspension
from contracts.events import MarketResumed, MarketSuspended
from contracts.topics import CATALOGUE
from stallkit.auth import Role
from stallkit.messaging import make_broker, publish_event
from stalltest.allocation import MONDAY, TUESDAY, RunningAllocation, local, set_now

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
THURSDAY = MONDAY + timedelta(days=3)
FRIDAY = MONDAY + timedelta(days=4)
TTL = 30 * 86400
Eventually = Callable[..., Awaitable[Any]]


def admin(svc: RunningAllocation) -> httpx.AsyncClient:
    """An admin client with a token minted on the current service clock."""
    return svc.client(svc.token("admin", Role.ADMIN, ttl=TTL))


def body(first: date, last: date, reason: str) -> dict[str, str]:
    """A suspension request body."""
    return {"first_date": first.isoformat(), "last_date": last.isoformat(), "reason": reason}


async def declare(
    svc: RunningAllocation, first: date, last: date, reason: str, key: str | None = None
) -> httpx.Response:
    """POST a suspension of XZ-91, with an Idempotency-Key if given."""
    headers = {"Idempotency-Key": key} if key else {}
    async with admin(svc) as a:
        return await a.post(
            "/v1/admin/markets/XZ-91/suspensions",
            json=body(first, last, reason),
            headers=headers,
        )


async def listed(svc: RunningAllocation, market: str = "XZ-91") -> list[dict[str, Any]]:
    """The market's suspensions as the admin API lists them."""
    async with admin(svc) as a:
        response = await a.get(f"/v1/admin/markets/{market}/suspensions")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def reason_on(svc: RunningAllocation, day: date) -> str | None:
    """The suspension reason availability shows for XZ-91's evening window on ``day``."""
    async with svc.client() as c:
        response = await c.get("/v1/markets/XZ-91/availability", params={"date": day.isoformat()})
    assert response.status_code == 200, response.text
    reason: str | None = response.json()["windows"][0]["suspended_reason"]
    return reason


async def book(svc: RunningAllocation, vendor: str, stall: str, day: date) -> httpx.Response:
    """POST a booking of ``stall`` for the evening window of ``day``."""
    async with svc.client(svc.token(vendor, ttl=TTL)) as c:
        return await c.post(
            "/v1/bookings",
            json={"stall_id": stall, "date": day.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )


async def booking_state(svc: RunningAllocation, vendor: str, booking_id: str) -> str:
    """The state of one of the vendor's bookings."""
    async with svc.client(svc.token(vendor, ttl=TTL)) as c:
        response = await c.get(f"/v1/bookings/{booking_id}")
    assert response.status_code == 200, response.text
    state: str = response.json()["state"]
    return state


# --- declaring -------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_returns_the_same_suspension(
    svc: RunningAllocation,
) -> None:
    first = await declare(svc, TUESDAY, WEDNESDAY, "台风红色预警", key="typhoon-1")
    again = await declare(svc, TUESDAY, WEDNESDAY, "台风红色预警", key="typhoon-1")
    other = await declare(svc, TUESDAY, THURSDAY, "台风红色预警", key="typhoon-1")

    assert first.status_code == 201, first.text
    suspension_id = first.json()["suspension_id"]
    assert first.headers["location"].endswith(f"/suspensions/{suspension_id}")
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["suspension_id"] == suspension_id
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert [s["suspension_id"] for s in await listed(svc)] == [suspension_id]


async def test_without_a_key_each_request_is_its_own_suspension(svc: RunningAllocation) -> None:
    one = await declare(svc, TUESDAY, TUESDAY, "路面施工")
    two = await declare(svc, TUESDAY, TUESDAY, "路面施工")
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.json()["suspension_id"] != two.json()["suspension_id"]
    assert len(await listed(svc)) == 2


async def test_a_retry_finishes_cancelling_what_an_interrupted_declaration_left(
    svc: RunningAllocation,
) -> None:
    vendor, _ = await svc.vendor()
    booked = await book(svc, vendor, "XZ-91-C001", TUESDAY)
    assert booked.status_code == 201, booked.text
    # The state a crash leaves right after the declaration script: the suspension and its
    # dates are written, the booking inside it is not cancelled yet.
    command = DeclareSuspension("XZ-91", TUESDAY, TUESDAY, "台风", idempotency_key="crash-1")
    bookings = svc.allocation.markets.bookings
    bookings.suspend_bookings = _crash  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            await svc.allocation.markets.declare(command)
    finally:
        del bookings.suspend_bookings
    assert await booking_state(svc, vendor, booked.json()["id"]) == "booked"

    retried = await declare(svc, TUESDAY, TUESDAY, "台风", key="crash-1")

    assert retried.status_code == 200, retried.text
    assert retried.json()["cancelled_bookings"] == 1
    assert await booking_state(svc, vendor, booked.json()["id"]) == "suspended_by_market"
    assert len(await listed(svc)) == 1


async def _crash(*args: object, **kwargs: object) -> int:
    raise RuntimeError("the process died here")


async def test_declaring_announces_the_suspension_with_its_id(
    svc: RunningAllocation, topic_reader: Callable[[str], Any]
) -> None:
    reader = await topic_reader(svc.settings.topic(CATALOGUE.name))
    declared = await declare(svc, TUESDAY, WEDNESDAY, "台风", key="announce-1")
    assert declared.status_code == 201, declared.text
    suspension_id = declared.json()["suspension_id"]

    def announced(records: list[Any]) -> list[dict[str, Any]]:
        events = [json.loads(r.value) for r in records]
        return [e for e in events if e["type"].endswith("suspension.declared.v1")]

    records = await reader.collect_until(lambda rs: bool(announced(rs)))
    (event,) = announced(records)
    assert event["data"]["suspension_id"] == suspension_id
    assert (event["data"]["first_date"], event["data"]["last_date"]) == (
        TUESDAY.isoformat(),
        WEDNESDAY.isoformat(),
    )


# --- lifting ---------------------------------------------------------------------------------


async def test_lifting_one_suspension_keeps_the_dates_another_covers(
    svc: RunningAllocation, topic_reader: Callable[[str], Any]
) -> None:
    reader = await topic_reader(svc.settings.topic(CATALOGUE.name))
    typhoon = (await declare(svc, TUESDAY, THURSDAY, "台风")).json()["suspension_id"]
    works = (await declare(svc, WEDNESDAY, FRIDAY, "施工")).json()["suspension_id"]
    # Wednesday and Thursday are covered by both: the later declaration's reason shows.
    assert [await reason_on(svc, d) for d in (TUESDAY, WEDNESDAY, FRIDAY)] == [
        "台风",
        "施工",
        "施工",
    ]

    async with admin(svc) as a:
        lifted = await a.delete(f"/v1/admin/markets/XZ-91/suspensions/{typhoon}")
        again = await a.delete(f"/v1/admin/markets/XZ-91/suspensions/{typhoon}")
        unknown = await a.delete("/v1/admin/markets/XZ-91/suspensions/sp_nothing")

    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_at"] is not None
    assert lifted.json()["reopened_dates"] == 1  # Tuesday; Wednesday and Thursday stay shut
    assert [await reason_on(svc, d) for d in (TUESDAY, WEDNESDAY, THURSDAY, FRIDAY)] == [
        None,
        "施工",
        "施工",
        "施工",
    ]
    vendor, _ = await svc.vendor()
    assert (await book(svc, vendor, "XZ-91-C002", TUESDAY)).status_code == 201
    assert (await book(svc, vendor, "XZ-91-C002", WEDNESDAY)).json()["code"] == "market_suspended"
    assert again.status_code == 200
    assert again.json()["already_lifted"] is True
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "suspension_not_found"
    state = {s["suspension_id"]: s["lifted_at"] for s in await listed(svc)}
    assert state[works] is None
    assert state[typhoon] is not None

    def lifts(records: list[Any]) -> list[dict[str, Any]]:
        events = [json.loads(r.value) for r in records]
        return [e for e in events if e["type"].endswith("suspension.lifted.v1")]

    records = await reader.collect_until(lambda rs: bool(lifts(rs)))
    (event,) = lifts(records)
    assert event["data"]["suspension_id"] == typhoon
    assert event["data"]["reopened_from"] == TUESDAY.isoformat()


async def test_lifting_reopens_from_today_on_only(svc: RunningAllocation) -> None:
    suspension = (await declare(svc, MONDAY, WEDNESDAY, "台风")).json()["suspension_id"]
    set_now(svc.clock, local(TUESDAY, 9))
    async with admin(svc) as a:
        lifted = await a.delete(f"/v1/admin/markets/XZ-91/suspensions/{suspension}")
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["reopened_from"] == TUESDAY.isoformat()
    assert [await reason_on(svc, d) for d in (MONDAY, TUESDAY, WEDNESDAY)] == ["台风", None, None]


async def test_suspensions_of_an_unknown_market_are_not_found(svc: RunningAllocation) -> None:
    async with admin(svc) as a:
        listing = await a.get("/v1/admin/markets/ZZ-00/suspensions")
        lift = await a.delete("/v1/admin/markets/ZZ-00/suspensions/sp_x")
        read = await a.get("/v1/admin/markets/XZ-91/suspensions/" + "s" * 5000)
    assert (listing.status_code, listing.json()["code"]) == (404, "market_not_found")
    assert (lift.status_code, lift.json()["code"]) == (404, "market_not_found")
    assert (read.status_code, read.json()["code"]) == (404, "suspension_not_found")


# --- windows' events -------------------------------------------------------------------------


async def publish(svc: RunningAllocation, *events: Any, event_id: str | None = None) -> None:
    """Publish window events as the windows service would."""
    broker = make_broker(svc.settings)
    await broker.start()
    try:
        for event in events:
            await publish_event(
                broker, svc.settings, event, time=svc.clock.now(), event_id=event_id
            )
    finally:
        await broker.stop()


def suspended(first: date, last: date, reason: str, suspension_id: str | None) -> MarketSuspended:
    """A ``market.suspended`` of XZ-91."""
    return MarketSuspended(
        market_id="XZ-91",
        district="xiangzhou",
        first_date=first,
        last_date=last,
        reason=reason,
        suspension_id=suspension_id,
    )


async def test_windows_re_announcing_a_declared_suspension_is_not_recorded_twice(
    svc: RunningAllocation, eventually: Eventually
) -> None:
    declared = (await declare(svc, TUESDAY, WEDNESDAY, "台风")).json()["suspension_id"]
    # The echo, then a suspension of windows' own: same market, same partition, in order.
    await publish(
        svc,
        suspended(TUESDAY, WEDNESDAY, "台风", declared),
        suspended(FRIDAY, FRIDAY, "龙舟赛", None),
    )

    async def both_seen() -> list[dict[str, Any]] | None:
        found = await listed(svc)
        return found if any(s["reason"] == "龙舟赛" for s in found) else None

    found = await eventually(both_seen)
    assert sorted((s["suspension_id"] == declared, s["origin"]) for s in found) == [
        (False, "windows"),
        (True, "admin"),
    ]
    assert await reason_on(svc, FRIDAY) == "龙舟赛"


async def test_a_redelivered_market_suspended_is_applied_once(
    svc: RunningAllocation, eventually: Eventually
) -> None:
    event_id = str(uuid.uuid4())
    event = suspended(TUESDAY, TUESDAY, "台风", None)
    await publish(svc, event, event_id=event_id)
    await publish(svc, event, event_id=event_id)
    await publish(svc, suspended(FRIDAY, FRIDAY, "marker", None))

    async def marker_seen() -> list[dict[str, Any]] | None:
        found = await listed(svc)
        return found if any(s["reason"] == "marker" for s in found) else None

    found = await eventually(marker_seen)
    assert [s["suspension_id"] for s in found if s["reason"] == "台风"] == [f"sp_{event_id}"]


async def test_market_resumed_lifts_the_named_suspension_or_all_without_a_name(
    svc: RunningAllocation, eventually: Eventually
) -> None:
    typhoon = (await declare(svc, TUESDAY, TUESDAY, "台风")).json()["suspension_id"]
    works = (await declare(svc, WEDNESDAY, WEDNESDAY, "施工")).json()["suspension_id"]
    await publish(
        svc, MarketResumed(market_id="XZ-91", district="xiangzhou", suspension_id=typhoon)
    )

    async def lifted(suspension_id: str) -> bool:
        found = {s["suspension_id"]: s for s in await listed(svc)}
        return found[suspension_id]["lifted_at"] is not None

    await eventually(lambda: lifted(typhoon))
    assert await reason_on(svc, TUESDAY) is None
    assert await reason_on(svc, WEDNESDAY) == "施工"
    assert not await lifted(works)

    await publish(svc, MarketResumed(market_id="XZ-91", district="xiangzhou"))
    await eventually(lambda: lifted(works))
    assert await reason_on(svc, WEDNESDAY) is None
