"""The booking rules as the Lua scripts decide them, through the service and the ledger.

No HTTP and no outbox relay: the service layer drives the same scripts as in production
against real Redis, a single server and a three-master Redis Cluster, and every outbox entry
is read back and checked against its contract.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from allocation.adapters.ledger import NoShowCount
from allocation.bootstrap import Allocation
from allocation.domain import stall_codes
from allocation.domain.errors import BookingRejected
from allocation.domain.model import ACTIVE_STATES, Booking, BookingState, PriorityGroup, Vendor
from allocation.service_layer.bookings import BookStall
from contracts.catalogue import Category
from stalltest.allocation import MONDAY, TUESDAY, local, set_now

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
_numbers = itertools.count(1)


async def vendor(
    allocation: Allocation,
    *,
    health_until: date | None = date(2099, 1, 1),
    priority: PriorityGroup = PriorityGroup.NONE,
) -> str:
    """A vendor created in the store; returns the id."""
    n = next(_numbers)
    created = Vendor(
        id=f"vd_ledger{n:06d}{uuid.uuid4().hex[:4]}",
        name=f"测试{n}",
        phone=f"137{uuid.uuid4().int % 10**8:08d}",
        priority_group=priority,
        categories=frozenset(Category),
        health_certificate_expires=health_until,
        suspended_until=None,
        created_at=allocation.clock.now(),
    )
    assert await allocation.vendors.create(created, "not-a-real-hash")
    return created.id


async def book(
    allocation: Allocation, vendor_id: str, stall: str, day: date, window: str = "evening"
) -> Booking:
    """Book through the service (the booking script decides)."""
    booking, replayed = await allocation.bookings.book(
        BookStall(vendor_id, stall, day, window, idempotency_key=uuid.uuid4().hex)
    )
    assert not replayed
    return booking


async def refused(allocation: Allocation, vendor_id: str, stall: str, day: date, **kw: Any) -> str:
    """The code a booking attempt is refused with."""
    with pytest.raises(BookingRejected) as raised:
        await book(allocation, vendor_id, stall, day, **kw)
    return raised.value.code


async def state_of(allocation: Allocation, booking_id: str) -> BookingState:
    """The stored state of a booking."""
    booking = await allocation.ledger.get(booking_id)
    assert booking is not None
    return booking.state


async def outbox(allocation: Allocation) -> list[dict[bytes, bytes]]:
    """Every entry of the outbox stream, oldest first (nothing relays it here)."""
    entries = await allocation.ledger.redis.xrange(allocation.keys.outbox())
    return [fields for _, fields in entries]


async def test_booking_rejection_cancel_check_in_and_no_show(
    allocation: Allocation, contract_check: Callable[[bytes], Any]
) -> None:
    redis = allocation.ledger.redis
    if isinstance(redis, RedisCluster):  # three masters share the slots; ours is on one
        assert len(redis.get_primaries()) == 3
    a = await vendor(allocation)
    b = await vendor(allocation)
    mine = await book(allocation, a, "XZ-91-C001", MONDAY)
    assert mine.state is BookingState.BOOKED
    assert await refused(allocation, b, "XZ-91-C001", MONDAY) == "stall_taken"
    assert (
        await refused(allocation, a, "XZ-92-C001", MONDAY, window="late") == "overlapping_booking"
    )

    cancelled = await allocation.bookings.cancel(a, mine.id)
    assert cancelled.state is BookingState.CANCELLED
    assert not cancelled.late_cancellation
    # The stall and the vendor's evening are free again.
    theirs = await book(allocation, b, "XZ-91-C001", MONDAY)
    late = await book(allocation, a, "XZ-92-C001", MONDAY, window="late")

    set_now(allocation.clock, local(MONDAY, 17, 10))
    code = stall_codes.sign(allocation.signing_key, "XZ-91-C001", 1)
    public = allocation.signing_key.public_key()
    checked_in = await allocation.bookings.check_in(b, theirs.id, code, public)
    assert checked_in.state is BookingState.CHECKED_IN

    set_now(allocation.clock, local(MONDAY, 19, 31))
    no_shows = await allocation.bookings.mark_no_shows(
        "XZ-92", MONDAY, "late", local(MONDAY, 19, 30)
    )
    assert [x.id for x in no_shows] == [late.id]
    assert await state_of(allocation, late.id) is BookingState.NO_SHOW
    assert await allocation.ledger.no_shows_since(a, 0.0) == 1
    assert await allocation.ledger.claimed_stalls(["XZ-92-C001"], MONDAY, "late") == set()

    entries = await outbox(allocation)
    types = [contract_check(e[b"value"]).type.split(".")[-2] for e in entries]
    assert types.count("created") == 3
    assert types.count("cancelled") == 1
    assert types.count("checked_in") == 1
    assert types.count("no_show") == 1
    assert types.count("stall_released") == 2
    (no_show,) = [e for e in entries if b"booking.no_show" in e[b"type"]]
    assert contract_check(no_show[b"value"]).data["no_shows_in_period"] == 1
    assert contract_check(no_show[b"value"]).data["suspended_until"] is None


@pytest.mark.parametrize(
    ("health_until", "allowed"),
    [
        pytest.param(None, False, id="no-certificate"),
        pytest.param(MONDAY - timedelta(days=1), False, id="expired-the-day-before"),
        pytest.param(MONDAY, True, id="valid-through-the-date"),
        pytest.param(MONDAY + timedelta(days=1), True, id="valid-after"),
    ],
)
@pytest.mark.parametrize("store", ["single"], indirect=True)
async def test_health_certificate_covers_cooked_food_through_its_expiry_date(
    allocation: Allocation, health_until: date | None, allowed: bool
) -> None:
    vendor_id = await vendor(allocation, health_until=health_until)
    if allowed:
        assert (
            await book(allocation, vendor_id, "XZ-91-A001", MONDAY)
        ).state is BookingState.BOOKED
    else:
        code = await refused(allocation, vendor_id, "XZ-91-A001", MONDAY)
        assert code == "health_certificate_required"
    # Daily goods need no certificate.
    assert (await book(allocation, vendor_id, "XZ-91-C001", TUESDAY)).state in ACTIVE_STATES


@pytest.mark.parametrize("store", ["single"], indirect=True)
async def test_checked_in_bookings_keep_blocking_overlaps_until_long_over(
    allocation: Allocation,
) -> None:
    vendor_id = await vendor(allocation)
    evening = await book(allocation, vendor_id, "XZ-91-C001", MONDAY)
    set_now(allocation.clock, local(MONDAY, 17, 30))
    code = stall_codes.sign(allocation.signing_key, "XZ-91-C001", 1)
    await allocation.bookings.check_in(
        vendor_id, evening.id, code, allocation.signing_key.public_key()
    )
    code = await refused(allocation, vendor_id, "XZ-92-C001", MONDAY, window="late")
    assert code == "overlapping_booking"

    # Two days on, the Monday booking cannot overlap anything bookable: it leaves the index.
    set_now(allocation.clock, local(WEDNESDAY, 10))
    await book(allocation, vendor_id, "XZ-91-C002", WEDNESDAY)
    active = allocation.keys.vendor_active(vendor_id)
    assert evening.id.encode() not in await allocation.ledger.redis.hkeys(active)


@pytest.mark.parametrize("store", ["single"], indirect=True)
async def test_transition_retries_when_what_the_caller_read_changed(
    allocation: Allocation,
) -> None:
    vendor_id = await vendor(allocation)
    mine = await book(allocation, vendor_id, "XZ-91-C001", MONDAY)
    ledger = allocation.ledger
    before = len(await outbox(allocation))

    async def cancel_with(booking: Booking, no_show: NoShowCount | None) -> str:
        decision = await ledger.transition(
            booking,
            now=allocation.clock.timestamp(),
            owner=vendor_id,
            allowed_from=frozenset({BookingState.BOOKED}),
            to_state=BookingState.CANCELLED,
            release=True,
            fields={},
            events=[],
            no_show=no_show,
        )
        return decision.outcome

    # The caller counted 2 earlier no-shows; the store has none: decide again.
    assert await cancel_with(mine, NoShowCount(since=0.0, prior=2, suspend_until=None)) == "retry"
    # Keys named from another stall than the booking's.
    assert await cancel_with(dataclasses.replace(mine, stall_id="XZ-91-C002"), None) == "retry"
    assert await state_of(allocation, mine.id) is BookingState.BOOKED
    assert len(await outbox(allocation)) == before
    assert await ledger.claimed_stalls(["XZ-91-C001"], MONDAY, "evening") == {"XZ-91-C001"}

    assert await cancel_with(mine, NoShowCount(since=0.0, prior=0, suspend_until=None)) == "ok"
    assert await ledger.no_shows_since(vendor_id, 0.0) == 1


@pytest.mark.parametrize("store", ["single"], indirect=True)
async def test_the_third_no_show_suspends_and_says_so_in_its_event(
    allocation: Allocation, contract_check: Callable[[bytes], Any]
) -> None:
    vendor_id = await vendor(allocation)
    days = [MONDAY, TUESDAY, WEDNESDAY]
    made = [await book(allocation, vendor_id, "XZ-91-C001", day) for day in days]
    for day, booking in zip(days, made, strict=True):
        set_now(allocation.clock, local(day, 18, 1))
        marked = await allocation.bookings.mark_no_shows("XZ-91", day, "evening", local(day, 18, 0))
        assert [x.id for x in marked] == [booking.id]
    suspended = await allocation.vendors.get(vendor_id)
    assert suspended is not None
    assert suspended.suspended_until is not None
    expected = local(WEDNESDAY, 18, 1) + timedelta(days=7)
    assert abs(suspended.suspended_until - expected) < timedelta(minutes=1)

    events = [
        contract_check(e[b"value"])
        for e in await outbox(allocation)
        if b"booking.no_show" in e[b"type"]
    ]
    assert [e.data["no_shows_in_period"] for e in events] == [1, 2, 3]
    assert [e.data["suspended_until"] is not None for e in events] == [False, False, True]
    announced = datetime.fromisoformat(events[-1].data["suspended_until"])
    assert abs(announced - suspended.suspended_until) < timedelta(seconds=1)
    code = await refused(allocation, vendor_id, "XZ-91-C002", WEDNESDAY + timedelta(days=1))
    assert code == "vendor_suspended"


async def test_bookings_made_before_the_active_index_are_indexed_once(
    allocation: Allocation,
) -> None:
    vendor_id = await vendor(allocation)
    monday = await book(allocation, vendor_id, "XZ-91-C001", MONDAY)
    await book(allocation, vendor_id, "XZ-91-C001", TUESDAY)
    wednesday = await book(allocation, vendor_id, "XZ-91-C001", WEDNESDAY)
    await allocation.bookings.cancel(vendor_id, wednesday.id)
    # A store from before the index: the vendor's active bookings are not in it.
    await allocation.ledger.redis.delete(allocation.keys.vendor_active(vendor_id))

    now = allocation.clock.timestamp()
    assert await allocation.ledger.index_active_bookings(now) == 2  # not the cancelled one
    assert await allocation.ledger.index_active_bookings(now) == 0
    code = await refused(allocation, vendor_id, "XZ-92-C001", MONDAY, window="late")
    assert code == "overlapping_booking"
    await allocation.bookings.cancel(vendor_id, monday.id)
    await book(allocation, vendor_id, "XZ-92-C001", MONDAY, window="late")


@pytest.mark.parametrize("store", ["single"], indirect=True)
async def test_a_late_booking_is_marked_at_its_own_deadline_not_the_windows(
    allocation: Allocation, contract_check: Callable[[bytes], Any]
) -> None:
    early = await book(allocation, await vendor(allocation), "XZ-91-C001", MONDAY)
    set_now(allocation.clock, local(MONDAY, 17, 59))  # the window opened at 17:30
    late_vendor = await vendor(allocation)
    late = await book(allocation, late_vendor, "XZ-91-C002", MONDAY)
    early_closes, late_closes = (
        datetime.fromisoformat(contract_check(e[b"value"]).data["check_in_closes_at"])
        for e in await outbox(allocation)
        if b"booking.created" in e[b"type"]
    )
    # Each booking is told its own deadline: 18:00 for the early one, 18:29 for the late one.
    assert early_closes == local(MONDAY, 18, 0)
    assert timedelta(0) <= late_closes - local(MONDAY, 18, 29) < timedelta(seconds=1)

    set_now(allocation.clock, local(MONDAY, 18, 0))
    marked = await allocation.bookings.mark_no_shows("XZ-91", MONDAY, "evening", local(MONDAY, 18))
    assert [b.id for b in marked] == [early.id]
    assert await state_of(allocation, late.id) is BookingState.BOOKED
    # it may still check in until 18:29
    set_now(allocation.clock, local(MONDAY, 18, 20))
    assert await allocation.bookings.mark_no_show(late.id, local(MONDAY, 18, 20)) == []

    set_now(allocation.clock, local(MONDAY, 18, 29))
    marked = await allocation.bookings.mark_no_show(late.id, late_closes)  # as announced
    assert [b.id for b in marked] == [late.id]
    assert await state_of(allocation, late.id) is BookingState.NO_SHOW
    # the deadline announced again (a redelivery) changes nothing
    assert await allocation.bookings.mark_no_show(late.id, late_closes) == []
    assert await allocation.ledger.no_shows_since(late_vendor, 0.0) == 1


@pytest.mark.parametrize("store", ["single"], indirect=True)
async def test_a_cancelled_window_ends_its_bookings_without_penalty(
    allocation: Allocation,
) -> None:
    a = await vendor(allocation)
    mine = await book(allocation, a, "XZ-91-C001", TUESDAY)
    other_day = await book(allocation, a, "XZ-91-C001", WEDNESDAY)

    ended = await allocation.bookings.end_window_bookings("XZ-91", TUESDAY, "evening", "已取消")
    again = await allocation.bookings.end_window_bookings("XZ-91", TUESDAY, "evening", "已取消")

    assert (ended, again) == (1, 0)
    assert await state_of(allocation, mine.id) is BookingState.SUSPENDED
    assert await state_of(allocation, other_day.id) is BookingState.BOOKED
    assert await allocation.ledger.no_shows_since(a, 0.0) == 0
    assert await allocation.ledger.claimed_stalls(["XZ-91-C001"], TUESDAY, "evening") == set()
