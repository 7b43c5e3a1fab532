"""The whole no-show and suspension loop with no test events: allocation and the real windows
service on one broker and one redis-server, sharing one clock that the test moves.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from stallkit.auth import Role
from stallkit.service import ServiceParts
from stalltest.allocation import (
    MONDAY,
    TUESDAY,
    RunningAllocation,
    local,
    serve,
    set_now,
    settings_for,
    small_catalogue,
)
from stalltest.plugin import Isolation, SettingsFactory
from stalltest.tokens import bearer, dev_token
from windows.app import create_app
from windows.config import WindowsSettings

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
_keys = itertools.count(1)


@dataclass
class System:
    allocation: RunningAllocation
    windows: httpx.AsyncClient
    staff: dict[str, str]

    async def book(self, token: str, stall: str, day: Any = MONDAY) -> httpx.Response:
        async with self.allocation.client(token) as client:
            return await client.post(
                "/v1/bookings",
                json={"stall_id": stall, "date": day.isoformat(), "window_id": "evening"},
                headers={"Idempotency-Key": f"k-{next(_keys)}"},
            )

    async def state(self, token: str, booking_id: str) -> str:
        async with self.allocation.client(token) as client:
            state: str = (await client.get(f"/v1/bookings/{booking_id}")).json()["state"]
            return state

    async def instances(self, day: Any) -> list[str]:
        r = await self.windows.get(
            f"/v1/markets/XZ-91/timeline?date={day.isoformat()}", headers=self.staff
        )
        return [i["state"] for i in r.json()] if r.status_code == 200 else []


@pytest.fixture
async def system(
    isolation: Isolation, service_settings: SettingsFactory, serve: Serve, eventually: Eventually
) -> AsyncIterator[System]:
    """Allocation with the small catalogue and windows, on Monday 17:20 local, one clock."""
    await service_settings(WindowsSettings)  # the topics exist
    async with serve_allocation(isolation) as running:
        set_now(running.clock, local(MONDAY, 17, 20))
        async with running.client(running.admin_token) as admin:
            r = await admin.put(
                "/v1/admin/catalogue", json=small_catalogue().model_dump(mode="json")
            )
            assert r.status_code == 200, r.text
        settings = await service_settings(WindowsSettings)
        parts = ServiceParts.from_settings(settings)
        parts.clock = running.clock  # the same clock object: moving it moves both services
        windows = await serve(create_app(settings, parts=parts, configure_logs=False))
        staff = bearer(
            dev_token(Role.ADMIN, "ops", now=running.clock.now(), ttl_seconds=30 * 86400)
        )
        system = System(running, windows, staff)

        async def planned() -> bool:
            return await system.instances(MONDAY) == ["scheduled"]

        await eventually(planned)
        yield system


def serve_allocation(isolation: Isolation) -> Any:
    return serve(settings_for(isolation))


async def test_a_booking_not_checked_in_becomes_a_no_show_at_its_deadline_and_frees_the_stall(
    system: System, eventually: Eventually
) -> None:
    _, early = await system.allocation.vendor()
    r = await system.book(early, "XZ-91-A001")
    assert r.status_code == 201, r.text
    early_booking = r.json()["id"]

    # 17:50: the window opened at 17:30; a booking now may check in until 18:20.
    set_now(system.allocation.clock, local(MONDAY, 17, 50))
    _, late = await system.allocation.vendor()
    r = await system.book(late, "XZ-91-A002")
    assert r.status_code == 201, r.text
    late_booking = r.json()["id"]

    set_now(system.allocation.clock, local(MONDAY, 17, 59) + timedelta(seconds=58))

    async def early_no_show() -> bool:
        return await system.state(early, early_booking) == "no_show"

    await eventually(early_no_show)
    assert await system.state(late, late_booking) == "booked"

    # The released stall is bookable again for the same window.
    _, another = await system.allocation.vendor()
    again = await system.book(another, "XZ-91-A001")
    assert again.status_code == 201, again.text

    set_now(system.allocation.clock, local(MONDAY, 18, 19) + timedelta(seconds=58))

    async def late_no_show() -> bool:
        return await system.state(late, late_booking) == "no_show"

    await eventually(late_no_show)
    assert await system.instances(MONDAY) == ["open"]


async def test_a_suspension_shuts_its_windows_ends_its_bookings_and_lifting_restores_them(
    system: System, eventually: Eventually
) -> None:
    _, vendor = await system.allocation.vendor()
    r = await system.book(vendor, "XZ-91-C001", TUESDAY)
    assert r.status_code == 201, r.text
    booking = r.json()["id"]
    async with system.allocation.client(system.allocation.admin_token) as admin:
        r = await admin.post(
            "/v1/admin/markets/XZ-91/suspensions",
            json={
                "first_date": TUESDAY.isoformat(),
                "last_date": TUESDAY.isoformat(),
                "reason": "台风红色预警",
            },
        )
        assert r.status_code == 201, r.text
        suspension = r.json()["suspension_id"]

    async def shut() -> bool:
        return await system.instances(TUESDAY) == ["suspended"]

    await eventually(shut)
    assert await system.state(vendor, booking) == "suspended_by_market"
    window = {
        "from": local(TUESDAY, 0).isoformat(),
        "to": (local(TUESDAY, 0) + timedelta(days=1)).isoformat(),
    }
    due = (await system.windows.get("/v1/boundaries", params=window, headers=system.staff)).json()
    # No window of XZ-91 opens inside the suspension; it starts at Tuesday's midnight.
    assert [d["kind"] for d in due if d["market_id"] == "XZ-91"] == ["suspended"]

    async with system.allocation.client(system.allocation.admin_token) as admin:
        r = await admin.delete(f"/v1/admin/markets/XZ-91/suspensions/{suspension}")
        assert r.status_code == 200, r.text

    async def restored() -> bool:
        return await system.instances(TUESDAY) == ["scheduled"]

    await eventually(restored)
    again = await system.book(vendor, "XZ-91-C001", TUESDAY)
    assert again.status_code == 201, again.text
