"""The lottery against the real broker and redis-server: vendors apply until the draw, the draw
books the winners once (also across replicas and after a crash mid-draw), the published draw
re-runs to its result (``stallctl draw verify``), and what remains is first come afterwards."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from allocation.adapters.keys import Keys
from allocation.bootstrap import Allocation, bootstrap
from allocation.domain.errors import BookingRejected
from allocation.domain.model import PriorityGroup, Vendor
from allocation.service_layer.bookings import BookStall
from allocation.service_layer.draws import Apply
from contracts.catalogue import Category
from contracts.lottery import DrawInputs, DrawResult, verify
from contracts.topics import BOOKINGS
from stallctl.cli import app as stallctl
from stallkit.clock import Clock
from stalltest.allocation import (
    MONDAY,
    RunningAllocation,
    local,
    serve_seeded,
    set_now,
    settings_for,
    small_catalogue,
)
from stalltest.plugin import Infra, Isolation

pytestmark = pytest.mark.integration

THURSDAY = MONDAY + timedelta(days=3)  # its draw: Tuesday 20:00
DRAW_TIME = local(MONDAY + timedelta(days=1), 20, 0)
LAID_OFF = PriorityGroup.LAID_OFF


def stalls(prefix: str, count: int = 10) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(1, count + 1)]


async def apply(c: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await c.post("/v1/applications", json=body)


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


@pytest.fixture
async def lottery(isolation: Isolation) -> Any:
    """The service with the lottery on, the small catalogue, Monday 10:00."""
    async with serve_seeded(isolation, lottery=True) as running:
        yield running


async def test_vendors_apply_the_draw_books_the_winners_and_anyone_can_verify_it(
    lottery: RunningAllocation, topic_reader: Any
) -> None:
    svc = lottery
    bookings_topic = await topic_reader(svc.settings.topic(BOOKINGS.name))
    window = {"market_id": "XZ-91", "date": THURSDAY.isoformat(), "window_id": "evening"}
    vendors = [await svc.vendor(priority=LAID_OFF) for _ in range(4)]
    vendors += [await svc.vendor() for _ in range(26)]
    wanted = stalls("XZ-91-A")[:3]
    for n, (_, token) in enumerate(vendors):
        async with svc.client(token) as c:
            response = await apply(c, {**window, "stall_ids": wanted if n % 5 == 1 else []})
            assert response.status_code == 201, response.text
    first_id, first_token = vendors[0]
    async with svc.client(first_token) as c:
        # Until the draw, a window is applied for, not booked.
        booking = await c.post(
            "/v1/bookings",
            json={"stall_id": "XZ-91-A001", "date": THURSDAY.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": "early"},
        )
        problem(booking, 409, "applications_only")
        assert datetime.fromisoformat(booking.json()["draw_at"]) == DRAW_TIME
        changed = await apply(c, {**window, "stall_ids": ["XZ-91-C001"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["stall_ids"] == ["XZ-91-C001"]
        assert changed.json()["status"] == "pending"
    async with svc.client() as anyone:
        before = (await anyone.get(f"/v1/draws/XZ-91/{THURSDAY}/evening")).json()
    assert before["state"] == "open"
    assert before["applicants"] == 30
    assert before["inputs"] is None
    assert len(before["commitment"]) == 64

    set_now(svc.clock, DRAW_TIME + timedelta(seconds=1))
    async with svc.client(first_token) as c:
        problem(await apply(c, window), 409, "applications_closed")
    assert await svc.allocation.draws.run_due() == 1
    assert await svc.allocation.draws.run_due() == 0  # once

    async with svc.client() as anyone:
        published = (await anyone.get(f"/v1/draws/XZ-91/{THURSDAY}/evening")).json()
    assert published["state"] == "done"
    inputs = DrawInputs.model_validate(published["inputs"])
    result = DrawResult.model_validate(published["result"])
    assert verify(inputs, before["commitment"], result).ok
    # 30 applicants for 20 stalls, 6 held for priority groups but only 4 priority applicants:
    # the other 2 stay held (first come for priority vendors until D-1 18:00).
    assert inputs.held_count == 6
    assert len(result.awards) == 18
    priority = {a.pseudonym for a in inputs.applicants if a.priority}
    assert len(priority) == 4
    assert priority <= {a.pseudonym for a in result.awards}  # 4 priority < 6 held

    # stallctl draw verify fetches it and re-runs it.
    args = ["draw", "verify", "XZ-91", THURSDAY.isoformat(), "evening", "--url", svc.url]
    cli = await asyncio.to_thread(CliRunner().invoke, stallctl, args)  # the server is this loop's
    assert cli.exit_code == 0, cli.output
    assert "✓ XZ-91" in cli.output

    # Each vendor sees what the draw gave them; winners hold the awarded stall.
    won = lost = 0
    awarded = {a.pseudonym: a.stall_id for a in result.awards}
    for _, token in vendors:
        async with svc.client(token) as c:
            (mine,) = (await c.get("/v1/applications")).json()
            bookings = (await c.get("/v1/bookings")).json()
        if mine["status"] == "won":
            won += 1
            assert mine["stall_id"] == awarded[mine["pseudonym"]]
            assert [b["stall_id"] for b in bookings] == [mine["stall_id"]]
        else:
            lost += 1
            assert mine["status"] == "lost"
            assert bookings == []
    assert (won, lost) == (18, 12)

    # The draw's events: the commitment before, the seed after, once each.
    def short(record: Any) -> str:
        return str(json.loads(record.value)["type"]).split(".markets.")[-1]

    records = await bookings_topic.collect_until(
        lambda rs: (
            sum(short(r) == "booking.created.v1" for r in rs) >= 20
            and any(short(r) == "draw.completed.v1" for r in rs)
        )
    )
    seen = Counter(short(r) for r in records)
    assert seen["draw.scheduled.v1"] == 1
    assert seen["draw.completed.v1"] == 1
    completed = next(json.loads(r.value)["data"] for r in records
                     if short(r) == "draw.completed.v1")  # fmt: skip
    assert completed["seed"] == inputs.seed
    assert len(completed["winner_ids"]) == 18
    assert first_id in completed["applicant_ids"]


async def test_applications_follow_the_booking_rules(lottery: RunningAllocation) -> None:
    svc = lottery
    _, standard_token = await svc.vendor()
    _, priority_token = await svc.vendor(priority=LAID_OFF)
    _, goods_only = await svc.vendor(categories=frozenset({Category.DAILY_GOODS}))
    sunday = MONDAY + timedelta(days=6)
    async with svc.client(standard_token) as c:
        # A standard vendor applies from D-3, a priority one from D-7.
        later = {"market_id": "XZ-91", "date": sunday.isoformat(), "window_id": "evening"}
        problem(await apply(c, later), 422, "outside_booking_horizon")
        thursday = {"market_id": "XZ-91", "date": THURSDAY.isoformat(), "window_id": "evening"}
        assert (await apply(c, thursday)).status_code == 201
        # One body, one place: the late window at XZ-92 overlaps the evening one.
        late = {"market_id": "XZ-92", "date": THURSDAY.isoformat(), "window_id": "late"}
        problem(await apply(c, late), 409, "overlapping_application")
        problem(await apply(c, {**thursday, "stall_ids": ["XZ-92-C001"]}), 404, "stall_not_found")
        for bad in (["XZ-91-A001"] * 2, stalls("XZ-91-A")[:4]):
            response = await apply(c, {**thursday, "stall_ids": bad})
            assert response.status_code == 422, response.text
        # Withdrawn: gone, and the time is free for another window.
        gone = await c.delete(f"/v1/applications/XZ-91/{THURSDAY}/evening")
        assert gone.status_code == 204, gone.text
        again = await c.delete(f"/v1/applications/XZ-91/{THURSDAY}/evening")
        problem(again, 404, "application_not_found")
        assert (await apply(c, late)).status_code == 201
        assert [a["market_id"] for a in (await c.get("/v1/applications")).json()] == ["XZ-92"]
    async with svc.client(priority_token) as c:
        assert (await apply(c, later)).status_code == 201
    async with svc.client(goods_only) as c:
        cooked = {**thursday, "stall_ids": ["XZ-91-A001"]}
        problem(await apply(c, cooked), 403, "category_not_permitted")
    # Applications count toward the weekly cap with bookings (5 a week).
    _, busy = await svc.vendor(priority=LAID_OFF)
    async with svc.client(busy) as c:
        for offset in range(2, 7):  # Wednesday to Sunday evenings
            day = MONDAY + timedelta(days=offset)
            body = {"market_id": "XZ-91", "date": day.isoformat(), "window_id": "evening"}
            assert (await apply(c, body)).status_code == 201
        saturday_morning = {"market_id": "DM-93", "date": (MONDAY + timedelta(days=5)).isoformat(),
                            "window_id": "morning"}  # fmt: skip
        problem(await apply(c, saturday_morning), 409, "weekly_cap_reached")


async def test_a_thousand_applicants_for_twenty_stalls_with_a_crash_mid_draw(
    infra: Infra, isolation: Isolation
) -> None:
    """The draw is killed after seven bookings; a restarted service and a second replica both
    take it up: exactly 20 bookings, no vendor with two, one draw.completed."""
    redis = Redis.from_url(infra.redis_url)
    settings = settings_for(isolation, lottery=True)

    async def replica() -> Allocation:
        built = bootstrap(settings, Clock(), redis)
        set_now(built.clock, local(MONDAY, 10))
        return built

    first = await replica()
    await first.catalogue.import_catalogue(small_catalogue())
    day, window = THURSDAY, "evening"
    vendor_ids = []
    for n in range(1000):
        vendor_id = f"vd_lot{n:04d}"
        priority = PriorityGroup.LOW_INCOME if n % 10 == 0 else PriorityGroup.NONE
        vendor = Vendor(
            id=vendor_id, name=f"摊贩{n}", phone=f"137{n:08d}", priority_group=priority,
            categories=frozenset(Category), health_certificate_expires=date(2099, 1, 1),
            suspended_until=None, created_at=first.clock.now(),
        )  # fmt: skip
        assert await first.vendors.create(vendor, "x")
        vendor_ids.append(vendor_id)
    for n, vendor_id in enumerate(vendor_ids):
        ranked = tuple(stalls("XZ-91-A")[n % 7 : n % 7 + 2]) if n % 3 else ()
        await first.draws.apply(Apply(vendor_id, "XZ-91", day, window, ranked))

    class Killed(BaseException):
        """The process dies: nothing after this line of the draw runs."""

    booked = 0
    real_book = first.bookings.book

    async def dying_book(command: BookStall, *, from_draw: bool = False) -> Any:
        nonlocal booked
        if booked == 7:
            raise Killed
        booked += 1
        return await real_book(command, from_draw=from_draw)

    first.bookings.book = dying_book  # type: ignore[method-assign]
    first.draws.store.release = _never_released  # type: ignore[method-assign]
    set_now(first.clock, DRAW_TIME + timedelta(minutes=1))
    with pytest.raises(Killed):
        await first.draws.run("XZ-91", day, window)
    keys = Keys(settings.redis_prefix)
    assert await redis.exists(keys.draw_lock("XZ-91", day.isoformat(), window))
    record = await first.draws.store.get("XZ-91", day, window)
    assert record is not None
    assert record.state == "drawn"
    # A booking now waits for the draw (the dead replica holds it until its lease runs out).
    await redis.delete(keys.draw_lock("XZ-91", day.isoformat(), window))  # lease expired

    restarted, other = await replica(), await replica()
    for built in (restarted, other):
        set_now(built.clock, DRAW_TIME + timedelta(minutes=2))
    done = await asyncio.gather(
        restarted.draws.run("XZ-91", day, window), other.draws.run("XZ-91", day, window)
    )
    assert all(done)

    ids = await restarted.ledger.window_booking_ids("XZ-91", day, window)
    bookings = await restarted.ledger.get_many(ids)
    assert len(bookings) == 20
    assert len({b.vendor_id for b in bookings}) == 20
    assert len({b.stall_id for b in bookings}) == 20
    outcomes = await restarted.draws.store.outcomes("XZ-91", day, window)
    assert Counter(o["status"] for o in outcomes.values()) == {"won": 20, "lost": 980}
    assert sum(1 for b in bookings if b.priority) >= 6
    types = Counter()
    for _, fields in await redis.xrange(keys.outbox()):
        types[fields[b"type"].decode().split(".markets.")[-1]] += 1
    assert types["draw.scheduled.v1"] == 1
    assert types["draw.completed.v1"] == 1
    assert types["booking.created.v1"] == 20
    publication = await restarted.draws.publication("XZ-91", day, window)
    assert verify(publication["inputs"], publication["commitment"], publication["result"]).ok

    # After the draw it is first come (no longer applications_only): every stall was won.
    loser = next(v for v, o in outcomes.items() if o["status"] == "lost")
    with pytest.raises(BookingRejected, match="stall_taken"):
        await restarted.bookings.book(BookStall(loser, bookings[0].stall_id, day, window, "k1"))
    await redis.aclose()


async def _never_released(*_: Any) -> None:
    """A killed process gives nothing back: its lease stays until it runs out."""
