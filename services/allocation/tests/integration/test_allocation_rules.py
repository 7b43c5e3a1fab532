"""Every booking rule through the HTTP API: one test per rejection code.

Each test sets things up so that only the rule under test fails, then checks what a vendor
notices: the status code, a problem+json body with the stable ``code``, and the state the API
shows afterwards. The service clock starts at 10:00 local on ``MONDAY``; tokens are minted after
each clock move (they expire on the service clock).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from allocation.config import AllocationSettings
from allocation.domain.model import PriorityGroup
from contracts.catalogue import Category
from stallkit.auth import Role
from stalltest.allocation import (
    MONDAY,
    TUESDAY,
    RunningAllocation,
    local,
    serve,
    set_now,
    small_catalogue,
)

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
THURSDAY = MONDAY + timedelta(days=3)
FRIDAY = MONDAY + timedelta(days=4)
SATURDAY = MONDAY + timedelta(days=5)
SUNDAY = MONDAY + timedelta(days=6)
PRIORITY = PriorityGroup.LAID_OFF
#: Long enough to outlive every clock move of a test.
TTL = 30 * 86400


def client(svc: RunningAllocation, sub: str, role: Role = Role.VENDOR) -> httpx.AsyncClient:
    """A client with a token minted now on the service clock."""
    return svc.client(svc.token(sub, role, ttl=TTL))


def admin(svc: RunningAllocation) -> httpx.AsyncClient:
    """An admin client with a token minted on the current service clock."""
    return client(svc, "admin", Role.ADMIN)


async def book(
    c: httpx.AsyncClient, stall: str, day: date, window: str = "evening"
) -> httpx.Response:
    """POST a booking with a fresh Idempotency-Key."""
    return await c.post(
        "/v1/bookings",
        json={"stall_id": stall, "date": day.isoformat(), "window_id": window},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )


def booked(response: httpx.Response) -> dict[str, Any]:
    """The created booking, asserting it was created."""
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["state"] == "booked"
    return body


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem body, asserting status, media type and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


async def stall_code(svc: RunningAllocation, stall: str) -> str:
    """The stall's current code text, as an admin reads it."""
    async with admin(svc) as a:
        response = await a.get(f"/v1/admin/stalls/{stall}/code")
    assert response.status_code == 200, response.text
    code: str = response.json()["code"]
    return code


async def me(svc: RunningAllocation, vendor_id: str) -> dict[str, Any]:
    """The vendor's own profile."""
    async with client(svc, vendor_id) as c:
        response = await c.get("/v1/vendors/me")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def parse(instant: str) -> datetime:
    """An ISO instant from the API (``Z`` or offset)."""
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


# --- place limit -------------------------------------------------------------------------


async def test_stall_taken_by_another_vendor(svc: RunningAllocation) -> None:
    a, _ = await svc.vendor()
    b, _ = await svc.vendor()
    async with client(svc, a) as ca, client(svc, b) as cb:
        first = booked(await book(ca, "XZ-91-C001", MONDAY))
        taken = await book(cb, "XZ-91-C001", MONDAY)
        other_stall = await book(cb, "XZ-91-C002", MONDAY)
        mine = await cb.get("/v1/bookings")
    problem(taken, 409, "stall_taken")
    booked(other_stall)
    assert [x["stall_id"] for x in mine.json()] == ["XZ-91-C002"]
    assert first["vendor_id"] == a


async def test_overlapping_booking_across_markets(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        evening = booked(await book(c, "XZ-91-C001", MONDAY))
        overlap = await book(c, "XZ-92-C001", MONDAY, "late")
        next_day = await book(c, "XZ-92-C001", TUESDAY, "late")
        mine = await c.get("/v1/bookings")
    body = problem(overlap, 409, "overlapping_booking")
    assert body["conflicting_booking"] == evening["id"]
    booked(next_day)
    assert sorted(x["market_id"] for x in mine.json()) == ["XZ-91", "XZ-92"]

    # Once the evening booking is cancelled, the late window is free for this vendor.
    async with client(svc, vendor) as c:
        assert (await c.delete(f"/v1/bookings/{evening['id']}")).status_code == 200
        booked(await book(c, "XZ-92-C001", MONDAY, "late"))


# --- attempts per minute ---------------------------------------------------------------------


async def test_a_vendor_hammering_the_booking_endpoint_is_held_to_30_attempts_a_minute(
    svc: RunningAllocation,
) -> None:
    vendor, _ = await svc.vendor()
    other, _ = await svc.vendor()
    holder, _ = await svc.vendor()
    set_now(svc.clock, local(MONDAY, 11))
    async with client(svc, holder) as c:
        booked(await book(c, "XZ-91-C001", MONDAY))
    async with client(svc, vendor) as c:
        first = await c.post(
            "/v1/bookings",
            json={"stall_id": "XZ-91-C002", "date": MONDAY.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": "mine-1"},
        )
        booked(first)
        # A script retrying a taken stall: each try is an attempt, refused or not.
        tries = [await book(c, "XZ-91-C001", TUESDAY) for _ in range(29)]
        held = await book(c, "XZ-91-C003", TUESDAY)
        replay = await c.post(
            "/v1/bookings",
            json={"stall_id": "XZ-91-C002", "date": MONDAY.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": "mine-1"},
        )
    assert [t.status_code for t in tries] == [201] + [409] * 28  # booked once, then taken
    body = problem(held, 429, "too_many_bookings")
    assert 1 <= int(held.headers["Retry-After"]) <= 60
    assert body["retry_after_seconds"] == int(held.headers["Retry-After"])
    # A replay of an earlier request is answered as before; another vendor is not held.
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == first.json()["id"]
    async with client(svc, other) as c:
        booked(await book(c, "XZ-91-C003", TUESDAY))
    # The next minute the vendor books again.
    set_now(svc.clock, local(MONDAY, 11, 1))
    async with client(svc, vendor) as c:
        booked(await book(c, "XZ-91-C004", WEDNESDAY))


# --- weekly cap ----------------------------------------------------------------------------


async def test_weekly_cap_reached_and_cancellation_frees_a_slot(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor(priority=PRIORITY)
    week = [MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY]
    async with client(svc, vendor) as c:
        made = [booked(await book(c, "XZ-91-C001", day)) for day in week]
        sixth = await book(c, "XZ-91-C001", SATURDAY)
        next_week = await book(c, "XZ-91-C001", MONDAY + timedelta(days=7))
        problem(sixth, 409, "weekly_cap_reached")
        booked(next_week)  # another ISO week, another cap

        cancelled = await c.delete(f"/v1/bookings/{made[-1]['id']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["late_cancellation"] is False
        saturday = await book(c, "XZ-91-C001", SATURDAY)
        sunday = await book(c, "XZ-91-C001", SUNDAY)
        mine = await c.get("/v1/bookings")
    booked(saturday)
    problem(sunday, 409, "weekly_cap_reached")
    active = [b for b in mine.json() if b["state"] == "booked"]
    assert len(active) == 6  # five in the week of MONDAY, one in the next


# --- permits -------------------------------------------------------------------------------


async def test_category_not_permitted(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor(categories=frozenset({Category.DAILY_GOODS}))
    async with client(svc, vendor) as c:
        refused = await book(c, "XZ-91-A001", MONDAY)
        allowed = await book(c, "XZ-91-C001", MONDAY)
    problem(refused, 403, "category_not_permitted")
    booked(allowed)


async def test_health_certificate_required_for_cooked_food(svc: RunningAllocation) -> None:
    cases: list[tuple[date | None, int]] = [
        (None, 403),  # no certificate
        (MONDAY - timedelta(days=1), 403),  # expired the day before
        (MONDAY, 201),  # valid through the date
        (MONDAY + timedelta(days=365), 201),
    ]
    for i, (health_until, expected) in enumerate(cases, start=1):
        vendor, _ = await svc.vendor(health_until=health_until)
        async with client(svc, vendor) as c:
            cooked = await book(c, f"XZ-91-A{i:03d}", MONDAY)
            goods = await book(c, f"XZ-91-C{i:03d}", TUESDAY)  # no certificate needed
        if expected == 403:
            problem(cooked, 403, "health_certificate_required")
        else:
            booked(cooked)
        booked(goods)


# --- time limit ----------------------------------------------------------------------------


async def test_outside_booking_horizon_standard_vendor(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    # FRIDAY opens for standard vendors at 00:00 on TUESDAY (D-3).
    set_now(svc.clock, local(MONDAY, 23, 59))
    async with client(svc, vendor) as c:
        early = await book(c, "XZ-91-C001", FRIDAY)
        mine = await c.get("/v1/bookings")
    problem(early, 422, "outside_booking_horizon")
    assert mine.json() == []

    set_now(svc.clock, local(TUESDAY, 0, 0))
    async with client(svc, vendor) as c:
        booked(await book(c, "XZ-91-C001", FRIDAY))


async def test_outside_booking_horizon_priority_vendor(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor(priority=PriorityGroup.COLLEGE_STUDENT)
    d7, d8 = MONDAY + timedelta(days=7), MONDAY + timedelta(days=8)
    async with client(svc, vendor) as c:
        at_d7 = await book(c, "XZ-91-C001", d7)
        at_d8 = await book(c, "XZ-91-C001", d8)
    booked(at_d7)
    problem(at_d8, 422, "outside_booking_horizon")


async def test_window_passed(svc: RunningAllocation) -> None:
    late, _ = await svc.vendor()
    too_late, _ = await svc.vendor()
    set_now(svc.clock, local(MONDAY, 22, 0))
    async with client(svc, late) as c:
        same_day = booked(await book(c, "XZ-91-C001", MONDAY))
    # Booked after the start: check-in runs 30 minutes from the booking (capped at the end).
    assert parse(same_day["check_in_closes_at"]) == local(MONDAY, 22, 30)

    set_now(svc.clock, local(MONDAY, 22, 30))
    async with client(svc, too_late) as c:
        passed = await book(c, "XZ-91-C002", MONDAY)
        mine = await c.get("/v1/bookings")
    problem(passed, 409, "window_passed")
    assert mine.json() == []


# --- priority hold -------------------------------------------------------------------------


async def test_held_for_priority_until_18_on_the_day_before(svc: RunningAllocation) -> None:
    # XZ-91 has 20 stalls: 30 % (6) are held for priority groups until MONDAY 18:00.
    stalls = [f"XZ-91-A{i:03d}" for i in range(1, 11)] + [f"XZ-91-C{i:03d}" for i in range(1, 11)]
    for stall in stalls[:14]:
        vendor, _ = await svc.vendor()
        async with client(svc, vendor) as c:
            booked(await book(c, stall, TUESDAY))

    fifteenth, _ = await svc.vendor()
    priority, _ = await svc.vendor(priority=PriorityGroup.LOW_INCOME)
    async with client(svc, fifteenth) as c:
        held = await book(c, stalls[14], TUESDAY)
    async with client(svc, priority) as c:
        booked(await book(c, stalls[14], TUESDAY))
    problem(held, 409, "held_for_priority")

    set_now(svc.clock, local(MONDAY, 17, 59))
    async with client(svc, fifteenth) as c:
        problem(await book(c, stalls[15], TUESDAY), 409, "held_for_priority")

    set_now(svc.clock, local(MONDAY, 18, 0))
    async with client(svc, fifteenth) as c:
        after = await book(c, stalls[15], TUESDAY)
    booked(after)


# --- no-shows ------------------------------------------------------------------------------


async def test_free_cancellation_is_not_a_no_show_and_releases_the_stall(
    svc: RunningAllocation,
) -> None:
    vendor, _ = await svc.vendor()
    other, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
    # Just before the cutoff, 2 h before the 17:30 start (the clock keeps running).
    set_now(svc.clock, local(MONDAY, 15, 29))
    async with client(svc, vendor) as c:
        cancelled = await c.delete(f"/v1/bookings/{mine['id']}")
        read = await c.get(f"/v1/bookings/{mine['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["late_cancellation"] is False
    assert read.json()["state"] == "cancelled"
    profile = await me(svc, vendor)
    assert profile["no_shows_last_30_days"] == 0
    assert profile["suspended_until"] is None
    async with client(svc, other) as c:
        booked(await book(c, "XZ-91-C001", MONDAY))


async def test_vendor_suspended_after_three_late_cancellations(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    days = [MONDAY, TUESDAY, WEDNESDAY]
    async with client(svc, vendor) as c:
        made = [booked(await book(c, "XZ-91-C001", day)) for day in days]

    for day, booking in zip(days, made, strict=True):
        set_now(svc.clock, local(day, 16, 0))  # after the 15:30 free-cancellation cutoff
        async with client(svc, vendor) as c:
            late = await c.delete(f"/v1/bookings/{booking['id']}")
        assert late.status_code == 200, late.text
        assert late.json()["state"] == "cancelled"
        assert late.json()["late_cancellation"] is True
        if day != WEDNESDAY:
            assert (await me(svc, vendor))["suspended_until"] is None

    async with client(svc, vendor) as c:
        refused = await book(c, "XZ-91-C002", THURSDAY)
    body = problem(refused, 403, "vendor_suspended")
    until = parse(body["suspended_until"])
    expected = local(WEDNESDAY, 16, 0) + timedelta(days=7)
    assert abs(until - expected) < timedelta(minutes=1)  # the service clock keeps running

    profile = await me(svc, vendor)
    assert profile["no_shows_last_30_days"] == 3
    assert profile["suspended_until"] is not None
    assert abs(parse(profile["suspended_until"]) - until) < timedelta(seconds=1)

    # Only the suspension failed: someone else books that stall and date.
    other, _ = await svc.vendor()
    async with client(svc, other) as c:
        booked(await book(c, "XZ-91-C002", THURSDAY))


# --- market suspension ---------------------------------------------------------------------


async def test_market_suspended_cancels_bookings_and_refuses_new_ones(
    svc: RunningAllocation,
) -> None:
    holder, _ = await svc.vendor()
    newcomer, _ = await svc.vendor()
    reason = "台风红色预警 Typhoon signal red"
    async with client(svc, holder) as c:
        existing = booked(await book(c, "XZ-91-C001", TUESDAY))
    async with admin(svc) as a:
        declared = await a.post(
            "/v1/admin/markets/XZ-91/suspensions",
            json={
                "first_date": TUESDAY.isoformat(),
                "last_date": TUESDAY.isoformat(),
                "reason": reason,
            },
        )
    assert declared.status_code == 201, declared.text
    assert declared.json()["cancelled_bookings"] == 1

    async with client(svc, holder) as c:
        read = await c.get(f"/v1/bookings/{existing['id']}")
    assert read.status_code == 200
    assert read.json()["state"] == "suspended_by_market"
    assert read.json()["reason"] == reason
    assert (await me(svc, holder))["no_shows_last_30_days"] == 0  # without penalty

    async with client(svc, newcomer) as c:
        refused = await book(c, "XZ-91-C002", TUESDAY)
        other_date = await book(c, "XZ-91-C002", WEDNESDAY)
        other_market = await book(c, "XZ-92-C001", TUESDAY, "late")
    body = problem(refused, 409, "market_suspended")
    assert body["reason"] == reason
    booked(other_date)
    booked(other_market)


# --- catalogue lookups ---------------------------------------------------------------------


async def test_window_not_found(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor(priority=PRIORITY)
    async with client(svc, vendor) as c:
        unknown = await book(c, "XZ-91-C001", MONDAY, "midnight")
        weekday_morning = await book(c, "DM-93-B001", MONDAY, "morning")
        weekend_morning = await book(c, "DM-93-B001", SATURDAY, "morning")
        mine = await c.get("/v1/bookings")
    problem(unknown, 404, "window_not_found")
    problem(weekday_morning, 404, "window_not_found")
    booked(weekend_morning)
    assert [b["date"] for b in mine.json()] == [SATURDAY.isoformat()]


async def test_stall_not_found(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        missing = await book(c, "XZ-91-Z999", MONDAY)
        other_market = await book(c, "XZ-99-C001", MONDAY)
    problem(missing, 404, "stall_not_found")
    problem(other_market, 404, "stall_not_found")


async def test_idempotency_key_required(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    body = {"stall_id": "XZ-91-C001", "date": MONDAY.isoformat(), "window_id": "evening"}
    async with client(svc, vendor) as c:
        refused = await c.post("/v1/bookings", json=body)
        empty = await c.post("/v1/bookings", json=body, headers={"Idempotency-Key": ""})
        mine = await c.get("/v1/bookings")
    problem(refused, 400, "idempotency_key_required")
    assert empty.status_code in (400, 422), empty.text
    assert empty.headers["content-type"].startswith("application/problem+json")
    assert mine.json() == []


# --- transitions and check-in ----------------------------------------------------------------


async def test_illegal_transition_cancel_twice(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
        first = await c.delete(f"/v1/bookings/{mine['id']}")
        second = await c.delete(f"/v1/bookings/{mine['id']}")
        read = await c.get(f"/v1/bookings/{mine['id']}")
    assert first.status_code == 200
    problem(second, 409, "illegal_transition")
    assert read.json()["state"] == "cancelled"

    code = await stall_code(svc, "XZ-91-C001")
    set_now(svc.clock, local(MONDAY, 17, 30))
    async with client(svc, vendor) as c:
        check_in = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": code})
    problem(check_in, 409, "illegal_transition")


async def test_check_in_inside_the_window_with_the_real_code(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
    assert parse(mine["check_in_opens_at"]) == local(MONDAY, 17, 0)
    assert parse(mine["check_in_closes_at"]) == local(MONDAY, 18, 0)
    code = await stall_code(svc, "XZ-91-C001")
    set_now(svc.clock, local(MONDAY, 17, 0))  # the first allowed moment
    async with client(svc, vendor) as c:
        checked = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": code})
        read = await c.get(f"/v1/bookings/{mine['id']}")
    assert checked.status_code == 200, checked.text
    assert checked.json()["state"] == "checked_in"
    assert read.json()["state"] == "checked_in"
    assert read.json()["checked_in_at"] is not None


async def test_check_in_closed_too_early_and_too_late(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
    code = await stall_code(svc, "XZ-91-C001")
    for hour, minute in [(16, 59), (18, 1)]:
        set_now(svc.clock, local(MONDAY, hour, minute))
        async with client(svc, vendor) as c:
            refused = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": code})
            read = await c.get(f"/v1/bookings/{mine['id']}")
        body = problem(refused, 409, "check_in_closed")
        assert parse(body["opens_at"]) == local(MONDAY, 17, 0)
        assert parse(body["closes_at"]) == local(MONDAY, 18, 0)
        assert read.json()["state"] == "booked"


def _forge(code: str) -> str:
    """The code with one character of its signature changed (mid-signature, not padding)."""
    head, signature = code.rsplit(".", 1)
    i = len(signature) // 2
    replacement = "A" if signature[i] != "A" else "B"
    return f"{head}.{signature[:i]}{replacement}{signature[i + 1 :]}"


async def test_stall_code_invalid_when_forged(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
    real = await stall_code(svc, "XZ-91-C001")
    set_now(svc.clock, local(MONDAY, 17, 30))
    async with client(svc, vendor) as c:
        forged = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": _forge(real)})
        garbage = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": "hello"})
        other_version = real.replace(".1.", ".2.", 1)
        bumped = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": other_version})
        read = await c.get(f"/v1/bookings/{mine['id']}")
    problem(forged, 422, "stall_code_invalid")
    problem(garbage, 422, "stall_code_invalid")
    problem(bumped, 422, "stall_code_invalid")
    assert read.json()["state"] == "booked"


async def test_stall_code_revoked_then_reissued(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
    old = await stall_code(svc, "XZ-91-C001")
    async with admin(svc) as a:
        revoked = await a.delete("/v1/admin/stalls/XZ-91-C001/code")
        no_code = await a.get("/v1/admin/stalls/XZ-91-C001/code")
    assert revoked.status_code == 204
    problem(no_code, 422, "stall_code_revoked")

    set_now(svc.clock, local(MONDAY, 17, 30))
    async with client(svc, vendor) as c:
        refused = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": old})
    problem(refused, 422, "stall_code_revoked")

    async with admin(svc) as a:
        issued = await a.post("/v1/admin/stalls/XZ-91-C001/code")
    assert issued.status_code == 201, issued.text
    new = issued.json()["code"]
    assert new != old
    assert issued.json()["version"] == 2
    async with client(svc, vendor) as c:
        still_old = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": old})
        checked = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": new})
    problem(still_old, 422, "stall_code_revoked")
    assert checked.status_code == 200, checked.text
    assert checked.json()["state"] == "checked_in"


async def test_wrong_stall(svc: RunningAllocation) -> None:
    vendor, _ = await svc.vendor()
    async with client(svc, vendor) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
    neighbour = await stall_code(svc, "XZ-91-C002")
    set_now(svc.clock, local(MONDAY, 17, 30))
    async with client(svc, vendor) as c:
        refused = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": neighbour})
        read = await c.get(f"/v1/bookings/{mine['id']}")
    problem(refused, 422, "wrong_stall")
    assert read.json()["state"] == "booked"


# --- vendors and ownership -------------------------------------------------------------------


REGISTRATION = {
    "name": "陈小梅",
    "phone": "13800138000",
    "password": "correct horse battery",
    "priority_group": "none",
    "categories": ["daily_goods"],
}


async def test_invalid_credentials_and_the_real_login_flow(svc: RunningAllocation) -> None:
    registered = await svc.register(**REGISTRATION)
    await svc.verified(registered.id)  # the daily goods permit is verified by staff
    async with svc.client() as c:
        wrong = await c.post(
            "/v1/auth/token", data={"username": REGISTRATION["phone"], "password": "nope-nope"}
        )
        unknown = await c.post(
            "/v1/auth/token",
            data={"username": "13900000000", "password": REGISTRATION["password"]},
        )
        login = await c.post(
            "/v1/auth/token",
            data={"username": REGISTRATION["phone"], "password": REGISTRATION["password"]},
        )
    problem(wrong, 401, "invalid_credentials")
    problem(unknown, 401, "invalid_credentials")
    assert wrong.json()["title"] == unknown.json()["title"]  # no hint which part was wrong
    assert login.status_code == 200, login.text
    assert login.json()["token_type"] == "bearer"

    async with svc.client(login.json()["access_token"]) as c:
        profile = await c.get("/v1/vendors/me")
        made = await book(c, "XZ-91-C001", MONDAY)
        not_permitted = await book(c, "XZ-91-A001", TUESDAY)
        mine = await c.get("/v1/bookings")
    assert profile.status_code == 200
    assert profile.json()["id"] == registered.id
    assert profile.json()["phone_masked"] == "138****8000"
    assert "password" not in profile.json()
    assert booked(made)["vendor_id"] == registered.id
    problem(not_permitted, 403, "category_not_permitted")
    assert [b["id"] for b in mine.json()] == [made.json()["id"]]


async def test_booking_not_found_for_another_vendor(svc: RunningAllocation) -> None:
    owner, _ = await svc.vendor()
    intruder, _ = await svc.vendor()
    async with client(svc, owner) as c:
        mine = booked(await book(c, "XZ-91-C001", MONDAY))
    code = await stall_code(svc, "XZ-91-C001")
    set_now(svc.clock, local(MONDAY, 17, 30))
    async with client(svc, intruder) as c:
        read = await c.get(f"/v1/bookings/{mine['id']}")
        cancel = await c.delete(f"/v1/bookings/{mine['id']}")
        check_in = await c.post(f"/v1/bookings/{mine['id']}/check-in", json={"code": code})
        unknown = await c.get("/v1/bookings/bk_0000000000000000")
        listed = await c.get("/v1/bookings")
    problem(read, 404, "booking_not_found")
    problem(cancel, 404, "booking_not_found")
    problem(check_in, 404, "booking_not_found")
    problem(unknown, 404, "booking_not_found")
    assert listed.json() == []
    async with client(svc, owner) as c:
        still = await c.get(f"/v1/bookings/{mine['id']}")
    assert still.json()["state"] == "booked"


# --- the rules are settings ------------------------------------------------------------------


async def test_rules_follow_the_settings(make_settings: Callable[..., AllocationSettings]) -> None:
    settings = make_settings(
        weekly_cap=2, standard_horizon_days=1, free_cancel_hours=0, lottery=False
    )
    async with serve(settings) as other:
        async with admin(other) as a:
            loaded = await a.put(
                "/v1/admin/catalogue", json=small_catalogue().model_dump(mode="json")
            )
        assert loaded.status_code == 200, loaded.text
        set_now(other.clock, local(MONDAY, 10))
        standard, _ = await other.vendor()
        priority, _ = await other.vendor(priority=PRIORITY)
        async with client(other, standard) as c:
            tuesday = booked(await book(c, "XZ-91-C001", TUESDAY))  # D-1
            problem(await book(c, "XZ-91-C001", WEDNESDAY), 422, "outside_booking_horizon")
        async with client(other, priority) as c:
            booked(await book(c, "XZ-91-C002", MONDAY))
            booked(await book(c, "XZ-91-C002", TUESDAY))
            problem(await book(c, "XZ-91-C002", WEDNESDAY), 409, "weekly_cap_reached")

        set_now(other.clock, local(TUESDAY, 17, 0))  # free until the start with 0 h
        async with client(other, standard) as c:
            cancelled = await c.delete(f"/v1/bookings/{tuesday['id']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["late_cancellation"] is False
