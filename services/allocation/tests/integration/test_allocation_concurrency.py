"""Atomicity under concurrency: never two active bookings of one stall, one body one place."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from allocation.domain.model import ACTIVE_STATES, PriorityGroup
from stalltest.allocation import MONDAY, RunningAllocation

pytestmark = pytest.mark.integration

STALLS = [f"XZ-91-C{i:03d}" for i in range(1, 11)] + [f"XZ-91-A{i:03d}" for i in range(1, 11)]


async def test_500_vendors_on_20_stalls_exactly_20_win(svc: RunningAllocation) -> None:
    vendors = [await svc.vendor(priority=PriorityGroup.LOW_INCOME) for _ in range(500)]
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with svc.client(limits=limits) as client:

        async def attempt(i: int) -> httpx.Response:
            _, token = vendors[i]
            return await client.post(
                "/v1/bookings",
                json={
                    "stall_id": STALLS[i % 20],
                    "date": MONDAY.isoformat(),
                    "window_id": "evening",
                },
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"c-{i}"},
            )

        responses = await asyncio.gather(*(attempt(i) for i in range(500)))

    statuses = Counter(r.status_code for r in responses)
    codes = Counter(r.json().get("code") for r in responses if r.status_code != 201)
    assert statuses == {201: 20, 409: 480}, statuses
    assert codes == {"stall_taken": 480}
    won = sorted(r.json()["stall_id"] for r in responses if r.status_code == 201)
    assert won == sorted(STALLS)

    # The ledger agrees: each stall has exactly one active booking for the window.
    ids = await svc.allocation.ledger.window_booking_ids("XZ-91", MONDAY, "evening")
    bookings = await svc.allocation.ledger.get_many(ids)
    active = Counter(b.stall_id for b in bookings if b.state in ACTIVE_STATES)
    assert active == dict.fromkeys(STALLS, 1)
    async with svc.client() as c:
        availability = (await c.get(f"/v1/markets/XZ-91/availability?date={MONDAY}")).json()
    assert availability["windows"][0]["free"] == 0
    assert availability["windows"][0]["booked"] == 20


async def test_one_vendor_overlapping_markets_at_most_one_wins(svc: RunningAllocation) -> None:
    _, token = await svc.vendor(priority=PriorityGroup.LAID_OFF)
    targets = [("XZ-91-C001", "evening"), ("XZ-92-C001", "late")] * 10
    async with svc.client(token) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v1/bookings",
                    json={"stall_id": stall, "date": MONDAY.isoformat(), "window_id": window},
                    headers={"Idempotency-Key": f"o-{i}"},
                )
                for i, (stall, window) in enumerate(targets)
            )
        )
        mine = (await client.get("/v1/bookings")).json()
    assert sum(r.status_code == 201 for r in responses) == 1
    assert {r.json()["code"] for r in responses if r.status_code != 201} <= {
        "overlapping_booking",
        "stall_taken",
    }
    assert len([b for b in mine if b["state"] == "booked"]) == 1
