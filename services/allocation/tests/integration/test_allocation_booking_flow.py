"""Booking through the HTTP API: the happy path, idempotency and what a vendor sees."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from stalltest.allocation import MONDAY, RunningAllocation, serve, set_now

pytestmark = pytest.mark.integration


async def test_book_then_retry_with_same_key_returns_same_booking(svc: RunningAllocation) -> None:
    _, token = await svc.vendor()
    body = {"stall_id": "XZ-91-C001", "date": MONDAY.isoformat(), "window_id": "evening"}
    async with svc.client(token) as c:
        first = await c.post("/v1/bookings", json=body, headers={"Idempotency-Key": "k-1"})
        again = await c.post("/v1/bookings", json=body, headers={"Idempotency-Key": "k-1"})
        other = await c.post(
            "/v1/bookings",
            json={**body, "stall_id": "XZ-91-C002"},
            headers={"Idempotency-Key": "k-1"},
        )
        mine = await c.get("/v1/bookings")
    assert first.status_code == 201, first.text
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert [b["id"] for b in mine.json()] == [first.json()["id"]]
    assert first.json()["state"] == "booked"
    # Times are shown in Zhuhai local time.
    assert first.json()["starts_at"] == "2026-12-07T17:30:00+08:00"
    assert first.json()["check_in_closes_at"] == "2026-12-07T18:00:00+08:00"
    assert again.json()["starts_at"] == first.json()["starts_at"]


async def test_stall_taken_for_second_vendor(svc: RunningAllocation) -> None:
    _, a = await svc.vendor()
    _, b = await svc.vendor()
    body = {"stall_id": "XZ-91-C001", "date": MONDAY.isoformat(), "window_id": "evening"}
    async with svc.client(a) as ca, svc.client(b) as cb:
        ok = await ca.post("/v1/bookings", json=body, headers={"Idempotency-Key": "a"})
        taken = await cb.post("/v1/bookings", json=body, headers={"Idempotency-Key": "b"})
    assert ok.status_code == 201
    assert taken.status_code == 409
    assert taken.headers["content-type"].startswith("application/problem+json")
    assert taken.json()["code"] == "stall_taken"


async def test_a_restart_indexes_bookings_of_a_store_from_before_the_active_index(
    svc: RunningAllocation, eventually: Callable[..., Awaitable[Any]]
) -> None:
    vendor_id, token = await svc.vendor()
    body = {"stall_id": "XZ-91-C001", "date": MONDAY.isoformat(), "window_id": "evening"}
    async with svc.client(token) as c:
        booked = await c.post("/v1/bookings", json=body, headers={"Idempotency-Key": "old"})
    assert booked.status_code == 201, booked.text
    # What an older version left behind: the booking, no active-bookings index, no marker.
    redis, keys = svc.allocation.ledger.redis, svc.allocation.keys
    await redis.delete(keys.vendor_active(vendor_id), keys.k("migrated", "active-index"))

    async with serve(svc.settings) as restarted:
        set_now(restarted.clock, svc.clock.now())
        await eventually(lambda: redis.exists(keys.k("migrated", "active-index")))
        overlapping = {"stall_id": "XZ-92-C001", "date": MONDAY.isoformat(), "window_id": "late"}
        async with restarted.client(token) as c:
            refused = await c.post(
                "/v1/bookings", json=overlapping, headers={"Idempotency-Key": "new"}
            )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "overlapping_booking"
