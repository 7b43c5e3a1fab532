"""Every event allocation publishes is valid against its contract, as consumers receive it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from allocation.domain.model import PriorityGroup
from contracts.topics import BOOKINGS, CATALOGUE
from stallkit.auth import Role
from stalltest.allocation import MONDAY, TUESDAY, RunningAllocation, local, set_now

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
THURSDAY = MONDAY + timedelta(days=3)
FRIDAY = MONDAY + timedelta(days=4)


def client(svc: RunningAllocation, sub: str, role: Role = Role.VENDOR) -> httpx.AsyncClient:
    """A client with a token minted now on the service clock."""
    return svc.client(svc.token(sub, role))


async def book(svc: RunningAllocation, vendor: str, stall: str, day: date) -> str:
    """Book over HTTP; returns the booking id."""
    async with client(svc, vendor) as c:
        response = await c.post(
            "/v1/bookings",
            json={"stall_id": stall, "date": day.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
    assert response.status_code == 201, response.text
    booking_id: str = response.json()["id"]
    return booking_id


async def cancel(svc: RunningAllocation, vendor: str, booking_id: str) -> bool:
    """Cancel over HTTP; returns whether it was late."""
    async with client(svc, vendor) as c:
        response = await c.delete(f"/v1/bookings/{booking_id}")
    assert response.status_code == 200, response.text
    late: bool = response.json()["late_cancellation"]
    return late


def _named(records: list[Any], name: str) -> list[Any]:
    return [r for r in records if f".{name}.v1".encode() in dict(r.headers)["ce_type"]]


async def test_books_cancels_check_ins_no_shows_and_suspensions_publish_valid_events(
    svc: RunningAllocation,
    topic_reader: Callable[[str], Any],
    contract_check: Callable[[bytes], Any],
) -> None:
    bookings = await topic_reader(svc.settings.topic(BOOKINGS.name))
    catalogue = await topic_reader(svc.settings.topic(CATALOGUE.name))
    absent, _ = await svc.vendor()
    present, _ = await svc.vendor()
    unlucky, _ = await svc.vendor(priority=PriorityGroup.LAID_OFF)  # books Friday early

    made = [await book(svc, absent, "XZ-91-C001", d) for d in (MONDAY, TUESDAY, WEDNESDAY)]
    thursday = await book(svc, absent, "XZ-91-C001", THURSDAY)
    checked = await book(svc, present, "XZ-91-C002", MONDAY)
    await book(svc, unlucky, "XZ-91-C003", FRIDAY)

    assert not await cancel(svc, absent, thursday)  # free
    set_now(svc.clock, local(MONDAY, 16, 0))
    assert await cancel(svc, absent, made[0])  # late: the first no-show

    set_now(svc.clock, local(MONDAY, 17, 10))
    async with client(svc, "admin", Role.ADMIN) as admin:
        code = (await admin.get("/v1/admin/stalls/XZ-91-C002/code")).json()["code"]
    async with client(svc, present) as c:
        response = await c.post(f"/v1/bookings/{checked}/check-in", json={"code": code})
    assert response.status_code == 200, response.text

    for day in (TUESDAY, WEDNESDAY):  # the second and third no-shows: suspended
        set_now(svc.clock, local(day, 18, 1))
        marked = await svc.allocation.bookings.mark_no_shows(
            "XZ-91", day, "evening", local(day, 18, 0)
        )
        assert len(marked) == 1

    async with client(svc, "admin", Role.ADMIN) as admin:
        suspended = await admin.post(
            "/v1/admin/markets/XZ-91/suspensions",
            json={"first_date": FRIDAY.isoformat(), "last_date": FRIDAY.isoformat(),
                  "reason": "台风红色预警 Typhoon signal red"},
        )  # fmt: skip
    assert suspended.status_code == 201, suspended.text

    # created 6, cancelled 2, checked_in 1, no_show 2, suspended_by_market 1, released 5
    records = await bookings.collect_until(lambda rs: len(rs) >= 17)
    assert len(records) == 17
    catalogue_records = await catalogue.collect_until(
        lambda rs: any(b"suspension" in r.value for r in rs)
    )
    for record in records + catalogue_records:
        envelope = contract_check(record.value)
        assert record.key.decode() == envelope.marketid
        assert dict(record.headers)["ce_id"].decode() == envelope.id

    assert len(_named(records, "booking.created")) == 6
    assert len(_named(records, "booking.stall_released")) == 5
    assert len(_named(records, "booking.suspended_by_market")) == 1
    no_shows = [contract_check(r.value).data for r in _named(records, "booking.no_show")]
    assert [n["no_shows_in_period"] for n in no_shows] == [2, 3]
    assert no_shows[0]["suspended_until"] is None
    assert no_shows[1]["suspended_until"] is not None
    cancelled = [contract_check(r.value).data for r in _named(records, "booking.cancelled")]
    assert sorted(c["late"] for c in cancelled) == [False, True]
