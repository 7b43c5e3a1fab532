"""Window events over the real broker: each booking's own check-in deadline, cancelled windows.

The service clock starts at 10:00 local on ``MONDAY``; the windows service is played by
publishing its events, keyed by market, so that they are applied in the order published.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from contracts.envelope import Event
from contracts.events import (
    BookingCheckInDeadlinePassed,
    CheckInDeadlinePassed,
    MarketSuspended,
    WindowCancelled,
)
from contracts.topics import BOOKINGS, DEAD_LETTER
from stallkit.messaging import make_broker, publish_event
from stalltest.allocation import MONDAY, TUESDAY, RunningAllocation, local, set_now

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
FRIDAY = MONDAY + timedelta(days=4)
Eventually = Callable[..., Awaitable[Any]]


async def publish(svc: RunningAllocation, event: Event, event_id: str | None = None) -> None:
    """Publish one event as the windows service would."""
    broker = make_broker(svc.settings)
    await broker.start()
    try:
        await publish_event(broker, svc.settings, event, time=svc.clock.now(), event_id=event_id)
    finally:
        await broker.stop()


async def applied_so_far(svc: RunningAllocation, eventually: Eventually) -> None:
    """Wait until allocation applied every XZ-91 window event published before this call.

    A ``market.suspended`` of a free date goes behind them on the market's partition; once it
    is listed, everything before it was handled.
    """
    marker = f"marker {uuid.uuid4().hex[:8]}"
    await publish(
        svc,
        MarketSuspended(
            market_id="XZ-91",
            district="xiangzhou",
            first_date=FRIDAY,
            last_date=FRIDAY,
            reason=marker,
        ),
    )

    async def seen() -> bool:
        async with svc.client(svc.admin_token) as a:
            response = await a.get("/v1/admin/markets/XZ-91/suspensions")
        return any(s["reason"] == marker for s in response.json())

    await eventually(seen)


async def book(svc: RunningAllocation, vendor: str, stall: str, day: date) -> dict[str, Any]:
    """Book ``stall`` for the evening window of ``day``; the booking as the API shows it."""
    async with svc.client(svc.token(vendor)) as c:
        response = await c.post(
            "/v1/bookings",
            json={"stall_id": stall, "date": day.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def state_of(svc: RunningAllocation, vendor: str, booking_id: str) -> str:
    """The state of one of the vendor's bookings."""
    async with svc.client(svc.token(vendor)) as c:
        response = await c.get(f"/v1/bookings/{booking_id}")
    assert response.status_code == 200, response.text
    state: str = response.json()["state"]
    return state


async def no_shows_of(svc: RunningAllocation, vendor: str) -> int:
    """The vendor's no-shows in the last 30 days, as they see them."""
    async with svc.client(svc.token(vendor)) as c:
        response = await c.get("/v1/vendors/me")
    assert response.status_code == 200, response.text
    count: int = response.json()["no_shows_last_30_days"]
    return count


def events_of(records: list[Any], event_type: str) -> list[dict[str, Any]]:
    """The decoded events of one type among ``records``."""
    found = [json.loads(r.value) for r in records]
    return [e for e in found if e["type"].endswith(f"{event_type}.v1")]


async def test_a_late_booking_is_a_no_show_at_its_own_deadline_not_the_windows(
    svc: RunningAllocation,
    topic_reader: Callable[[str], Any],
    eventually: Eventually,
) -> None:
    bookings = await topic_reader(svc.settings.topic(BOOKINGS.name))
    early_vendor, _ = await svc.vendor()
    late_vendor, _ = await svc.vendor()
    early = await book(svc, early_vendor, "XZ-91-C001", MONDAY)
    set_now(svc.clock, local(MONDAY, 17, 59))  # the evening window started at 17:30
    late = await book(svc, late_vendor, "XZ-91-C002", MONDAY)

    # booking.created tells each booking its own deadline, the one the vendor is shown.
    records = await bookings.collect_until(lambda rs: len(events_of(rs, "booking.created")) >= 2)
    closes = {
        e["data"]["booking_id"]: datetime.fromisoformat(e["data"]["check_in_closes_at"])
        for e in events_of(records, "booking.created")
    }
    assert closes[early["id"]] == local(MONDAY, 18, 0)
    late_closes = closes[late["id"]]
    assert local(MONDAY, 18, 29) <= late_closes < local(MONDAY, 18, 30)
    assert datetime.fromisoformat(late["check_in_closes_at"]) == late_closes

    # The window's deadline marks the booking it covers, not the one made at 17:59.
    set_now(svc.clock, local(MONDAY, 18, 0) + timedelta(seconds=1))
    await publish(
        svc,
        CheckInDeadlinePassed(
            market_id="XZ-91",
            date=MONDAY,
            window_id="evening",
            district="xiangzhou",
            deadline=local(MONDAY, 18, 0),
        ),
    )

    async def early_marked() -> bool:
        return await state_of(svc, early_vendor, early["id"]) == "no_show"

    await eventually(early_marked)
    assert await state_of(svc, late_vendor, late["id"]) == "booked"

    # Its own deadline, announced for it alone, does.
    set_now(svc.clock, late_closes + timedelta(seconds=1))
    own_deadline = BookingCheckInDeadlinePassed(
        market_id="XZ-91",
        date=MONDAY,
        window_id="evening",
        district="xiangzhou",
        booking_id=late["id"],
        deadline=late_closes,
    )
    event_id = str(uuid.uuid4())
    await publish(svc, own_deadline, event_id=event_id)

    async def late_marked() -> bool:
        return await state_of(svc, late_vendor, late["id"]) == "no_show"

    await eventually(late_marked)

    # Redelivered, announced again under another id, or for a booking allocation does not
    # know: nothing changes and nothing is dead-lettered.
    await publish(svc, own_deadline, event_id=event_id)
    await publish(svc, own_deadline)
    await publish(svc, own_deadline.model_copy(update={"booking_id": "bk_0000000000000000"}))
    await applied_so_far(svc, eventually)

    assert await no_shows_of(svc, late_vendor) == 1
    assert await no_shows_of(svc, early_vendor) == 1
    records = await bookings.collect_until(
        lambda rs: len(events_of(rs, "booking.stall_released")) >= 2
    )
    no_shows = events_of(records, "booking.no_show")
    assert sorted(e["data"]["booking_id"] for e in no_shows) == sorted([early["id"], late["id"]])
    released = events_of(records, "booking.stall_released")
    assert sorted((e["data"]["stall_id"], e["data"]["cause"]) for e in released) == [
        ("XZ-91-C001", "no_show"),
        ("XZ-91-C002", "no_show"),
    ]
    dead = await topic_reader(svc.settings.topic(DEAD_LETTER.name))
    assert await dead.collect_until(lambda rs: False, timeout=1.0) == []

    # The stall is bookable again for the same window.
    another, _ = await svc.vendor()
    await book(svc, another, "XZ-91-C002", MONDAY)


async def test_a_cancelled_window_ends_its_bookings_without_penalty_and_frees_the_stalls(
    svc: RunningAllocation,
    topic_reader: Callable[[str], Any],
    eventually: Eventually,
) -> None:
    bookings = await topic_reader(svc.settings.topic(BOOKINGS.name))
    a, _ = await svc.vendor()
    b, _ = await svc.vendor()
    tuesday_a = await book(svc, a, "XZ-91-C001", TUESDAY)
    tuesday_b = await book(svc, b, "XZ-91-A001", TUESDAY)
    wednesday_a = await book(svc, a, "XZ-91-C001", WEDNESDAY)
    reason = "台风红色预警 Typhoon signal red"

    cancelled = WindowCancelled(
        market_id="XZ-91",
        date=TUESDAY,
        window_id="evening",
        district="xiangzhou",
        cause="closed",
        reason=reason,
    )
    event_id = str(uuid.uuid4())
    await publish(svc, cancelled, event_id=event_id)
    await publish(svc, cancelled, event_id=event_id)  # a redelivery
    await publish(svc, cancelled)  # announced again under another id
    await applied_so_far(svc, eventually)

    for vendor, booking in ((a, tuesday_a), (b, tuesday_b)):
        assert await state_of(svc, vendor, booking["id"]) == "suspended_by_market"
        assert await no_shows_of(svc, vendor) == 0
    assert await state_of(svc, a, wednesday_a["id"]) == "booked"
    async with svc.client(svc.token(a)) as c:
        shown = (await c.get(f"/v1/bookings/{tuesday_a['id']}")).json()
    assert shown["reason"] == reason

    # The stalls of the instance are free; the other date keeps its booking.
    async with svc.client() as c:
        tuesday = (
            await c.get("/v1/markets/XZ-91/availability", params={"date": TUESDAY.isoformat()})
        ).json()["windows"][0]
        wednesday = (
            await c.get("/v1/markets/XZ-91/availability", params={"date": WEDNESDAY.isoformat()})
        ).json()["windows"][0]
    assert (tuesday["booked"], tuesday["free"]) == (0, 20)
    assert wednesday["booked"] == 1

    # Each booking ended once: one suspended_by_market and one stall_released each.
    records = await bookings.collect_until(
        lambda rs: len(events_of(rs, "booking.stall_released")) >= 2
    )
    ended = events_of(records, "booking.suspended_by_market")
    assert sorted(e["data"]["booking_id"] for e in ended) == sorted(
        [tuesday_a["id"], tuesday_b["id"]]
    )
    assert {e["data"]["reason"] for e in ended} == {reason}
    released = events_of(records, "booking.stall_released")
    assert sorted((e["data"]["stall_id"], e["data"]["cause"]) for e in released) == [
        ("XZ-91-A001", "suspended"),
        ("XZ-91-C001", "suspended"),
    ]
    assert events_of(records, "booking.no_show") == []
