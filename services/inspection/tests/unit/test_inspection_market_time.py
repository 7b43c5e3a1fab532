"""Which window runs when: the schedule, emergency closures, cancellations and suspensions.

The market runs an evening window (17:30-20:00) and a late one (20:30-22:00) every day; the
scene is Friday 2026-11-20 (local times, Asia/Shanghai).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.envelope import Envelope, Event, RawEnvelope
from contracts.events import (
    BookingCancelled,
    BookingCreated,
    MarketChanged,
    MarketResumed,
    MarketSuspended,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
    ScheduleChanged,
    StallChanged,
    StallCodeIssued,
    StallCodeRevoked,
    WindowCancelled,
    WindowClosed,
    WindowOpened,
)
from inspection.adapters.expectation_store import InMemoryExpectationStore
from inspection.domain.expected import CodeStatus
from inspection.domain.market_time import (
    InstanceOverride,
    MarketTimeline,
    Suspension,
    WindowInstance,
    after_suspension_declared,
    after_suspension_lifted,
    after_window_cancelled,
    after_window_closed,
    after_window_opened,
    in_force_from,
    local_date,
)
from inspection.entrypoints.subscribers import ExpectationProjector, projection_handlers
from stallkit.clock import local_datetime

pytestmark = pytest.mark.unit

MARKET = "XZ-07"
FRIDAY = date(2026, 11, 20)
SATURDAY = FRIDAY + timedelta(days=1)
EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(17, 30), end=time(20, 0),
)  # fmt: skip
LATE = MarketWindow(
    id="late", name_zh="晚市", name_en="Late", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(20, 30), end=time(22, 0),
)  # fmt: skip
WEEKEND = MarketWindow(
    id="morning", name_zh="早市", name_en="Morning", days=[6, 7], start=time(6), end=time(10)
)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock time as an aware UTC datetime."""
    return local_datetime(day, hour * 60 + minute).astimezone(UTC)


def instance(window: MarketWindow, day: date = FRIDAY, ends_at: datetime | None = None) -> Any:
    start = local(day, window.start.hour, window.start.minute)
    end = ends_at or local(day, window.end.hour, window.end.minute)
    return WindowInstance(MARKET, day, window.id, start, end)


def timeline(
    *,
    windows: Sequence[MarketWindow] = (EVENING, LATE),
    overrides: dict[tuple[date, str], InstanceOverride] | None = None,
    suspensions: Sequence[Suspension] = (),
    resumed_all: Sequence[datetime] = (),
    schedule_as_of: datetime | None = None,
) -> MarketTimeline:
    return MarketTimeline(
        MARKET,
        windows,
        schedule_as_of or local(FRIDAY - timedelta(days=30), 9),
        suspensions,
        resumed_all,
        overrides or {},
    )


def closure_today(at: datetime) -> Suspension:
    """An emergency closure at ``at``, as ``market.suspended`` announces it."""
    day = local_date(at)
    return after_suspension_declared(None, "cl_1", day, day, "台风 Typhoon", at)


# --- the schedule ------------------------------------------------------------------------------


def test_the_window_running_at_a_moment_is_found_from_the_schedule() -> None:
    tl = timeline(windows=(EVENING, LATE, WEEKEND))
    assert tl.window_at(local(FRIDAY, 18)) == instance(EVENING)
    assert tl.window_at(local(FRIDAY, 17, 30)) == instance(EVENING)
    assert tl.window_at(local(FRIDAY, 20)) is None  # the end is not in the window
    assert tl.window_at(local(FRIDAY, 20, 15)) is None
    assert tl.window_at(local(FRIDAY, 21)) == instance(LATE)
    assert tl.window_at(local(FRIDAY, 7)) is None  # the morning market runs on weekends only
    assert tl.window_at(local(SATURDAY, 7)) == instance(WEEKEND, SATURDAY)
    # Instances carry UTC times: 17:30 in Zhuhai is 09:30 UTC.
    assert instance(EVENING).starts_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def test_a_market_without_a_schedule_has_no_window() -> None:
    assert timeline(windows=()).window_at(local(FRIDAY, 18)) is None
    assert timeline(windows=()).current_or_next(local(FRIDAY, 18)) is None


def test_the_current_or_next_window_is_the_running_one_else_the_next_to_start() -> None:
    tl = timeline()
    assert tl.current_or_next(local(FRIDAY, 18)) == instance(EVENING)
    assert tl.current_or_next(local(FRIDAY, 12)) == instance(EVENING)
    assert tl.current_or_next(local(FRIDAY, 20, 10)) == instance(LATE)
    assert tl.current_or_next(local(FRIDAY, 23)) == instance(EVENING, SATURDAY)
    weekend_only = timeline(windows=(WEEKEND,))
    assert weekend_only.current_or_next(local(FRIDAY, 23)) == instance(WEEKEND, SATURDAY)


# --- what the windows service said -------------------------------------------------------------


def test_an_emergency_closure_ends_the_running_window_early() -> None:
    closed = after_window_closed(None, local(FRIDAY, 19), "台风红色预警 Typhoon signal red")
    tl = timeline(overrides={(FRIDAY, "evening"): closed})
    early = instance(EVENING, ends_at=local(FRIDAY, 19))
    assert tl.window_at(local(FRIDAY, 18, 30)) == early
    assert tl.window_at(local(FRIDAY, 19)) is None
    assert tl.window_at(local(FRIDAY, 19, 30)) is None  # vending now is overtime


def test_a_window_closed_at_its_end_keeps_its_end() -> None:
    closed = after_window_closed(None, local(FRIDAY, 20), None)
    tl = timeline(overrides={(FRIDAY, "evening"): closed})
    assert tl.window_at(local(FRIDAY, 19, 59)) == instance(EVENING)


def test_a_cancelled_window_does_not_run_and_the_next_one_is_found_instead() -> None:
    cancelled = after_window_cancelled(None, local(FRIDAY, 19), "closed", "台风")
    tl = timeline(overrides={(FRIDAY, "late"): cancelled})
    assert tl.window_at(local(FRIDAY, 21)) is None
    assert tl.current_or_next(local(FRIDAY, 20, 10)) == instance(EVENING, SATURDAY)


def test_a_closure_shortens_the_open_window_and_shuts_the_later_ones_of_the_day() -> None:
    at = local(FRIDAY, 18, 10)
    tl = timeline(
        overrides={(FRIDAY, "evening"): after_window_closed(None, at, "台风")},
        suspensions=[closure_today(at)],
    )
    assert tl.window_at(local(FRIDAY, 18)) == instance(EVENING, ends_at=at)
    assert tl.window_at(local(FRIDAY, 21)) is None  # suspended, even before its cancel arrives
    assert tl.current_or_next(local(FRIDAY, 18, 30)) == instance(EVENING, SATURDAY)


def test_a_window_that_started_before_a_suspension_runs_on() -> None:
    suspension = after_suspension_declared(
        None, "sp_1", FRIDAY, SATURDAY, "public event", local(FRIDAY, 18)
    )
    tl = timeline(suspensions=[suspension])
    assert tl.window_at(local(FRIDAY, 19)) == instance(EVENING)
    assert tl.window_at(local(FRIDAY, 21)) is None
    assert tl.window_at(local(SATURDAY, 18)) is None
    assert tl.current_or_next(local(FRIDAY, 20, 10)) == instance(EVENING, SATURDAY + timedelta(1))


def test_a_suspension_declared_ahead_takes_effect_at_the_start_of_its_first_date() -> None:
    declared_at = local(FRIDAY - timedelta(days=3), 10)
    assert in_force_from(FRIDAY, declared_at) == local(FRIDAY, 0)
    assert in_force_from(FRIDAY, local(FRIDAY, 18)) == local(FRIDAY, 18)
    suspension = after_suspension_declared(
        None, "sp_1", FRIDAY, FRIDAY, "typhoon", in_force_from(FRIDAY, declared_at)
    )
    tl = timeline(suspensions=[suspension])
    assert tl.window_at(local(FRIDAY - timedelta(days=1), 18)) is not None
    assert tl.current_or_next(local(FRIDAY - timedelta(days=1), 23)) == instance(EVENING, SATURDAY)


def test_a_lifted_suspension_lets_the_later_windows_run_again() -> None:
    suspension = after_suspension_declared(
        None, "sp_1", FRIDAY, SATURDAY, "typhoon", local(FRIDAY, 0)
    )
    lifted = after_suspension_lifted(suspension, "sp_1", local(FRIDAY, 20, 15), FRIDAY)
    cancelled = after_window_cancelled(None, local(FRIDAY - timedelta(1), 12), "suspended", "x")
    tl = timeline(
        suspensions=[lifted],
        overrides={(FRIDAY, "late"): cancelled, (FRIDAY, "evening"): cancelled},
    )
    assert tl.window_at(local(FRIDAY, 21)) == instance(LATE)  # the lift came before its end
    assert tl.window_at(local(FRIDAY, 18)) is None  # it had ended when the lift came
    assert tl.window_at(local(SATURDAY, 18)) == instance(EVENING, SATURDAY)


def test_a_lift_of_another_suspensions_dates_does_not_undo_a_cancellation() -> None:
    other = after_suspension_declared(None, "sp_2", SATURDAY, SATURDAY, "event", local(FRIDAY, 0))
    other = after_suspension_lifted(other, "sp_2", local(FRIDAY, 12), FRIDAY)
    cancelled = after_window_cancelled(None, local(FRIDAY, 9), "suspended", "typhoon")
    tl = timeline(suspensions=[other], overrides={(FRIDAY, "late"): cancelled})
    assert tl.window_at(local(FRIDAY, 21)) is None


def test_resumed_without_an_id_lifts_every_suspension_in_force() -> None:
    suspension = after_suspension_declared(
        None, "sp_1", FRIDAY, SATURDAY, "typhoon", local(FRIDAY, 0)
    )
    tl = timeline(suspensions=[suspension], resumed_all=[local(FRIDAY, 20, 10)])
    assert tl.window_at(local(FRIDAY, 18)) is None
    assert tl.window_at(local(FRIDAY, 21)) == instance(LATE)
    assert tl.window_at(local(SATURDAY, 18)) == instance(EVENING, SATURDAY)


def test_a_cancellation_for_a_schedule_change_holds_until_a_newer_schedule() -> None:
    cancelled = after_window_cancelled(None, local(FRIDAY, 9), "schedule_changed", "removed")
    overrides = {(FRIDAY, "late"): cancelled}
    older = timeline(overrides=overrides, schedule_as_of=local(FRIDAY, 8, 59))
    assert older.window_at(local(FRIDAY, 21)) is None
    newer = timeline(overrides=overrides, schedule_as_of=local(FRIDAY, 12))
    assert newer.window_at(local(FRIDAY, 21)) == instance(LATE)


def test_a_started_window_runs_on_its_own_times_whatever_came_after() -> None:
    opened = after_window_opened(None, local(FRIDAY, 17, 30), local(FRIDAY, 20))
    opened = after_window_cancelled(opened, local(FRIDAY, 18), "schedule_changed", "moved")
    tl = timeline(
        windows=(EVENING.model_copy(update={"start": time(18, 30), "end": time(21)}),),
        overrides={(FRIDAY, "evening"): opened},
        suspensions=[closure_today(local(FRIDAY, 17))],
    )
    assert tl.window_at(local(FRIDAY, 17, 45)) == instance(EVENING)
    assert tl.window_at(local(FRIDAY, 20, 30)) is None


def test_nothing_to_come_within_a_week_is_none() -> None:
    suspension = after_suspension_declared(
        None, "sp_1", FRIDAY, FRIDAY + timedelta(days=10), "works", local(FRIDAY, 0)
    )
    assert timeline(suspensions=[suspension]).current_or_next(local(FRIDAY, 12)) is None


# --- folds: duplicates and order change nothing ------------------------------------------------


def test_folds_of_window_events_are_idempotent_and_keep_the_earliest_or_latest_word() -> None:
    start, end = local(FRIDAY, 17, 30), local(FRIDAY, 20)
    opened = after_window_opened(None, start, end)
    assert after_window_opened(opened, start, end) == opened
    closed = after_window_closed(opened, local(FRIDAY, 19), "typhoon")
    assert after_window_closed(closed, local(FRIDAY, 19), "typhoon") == closed
    assert after_window_closed(closed, end, None) == closed  # the earlier close stands
    late_word = after_window_closed(after_window_closed(opened, end, None), local(FRIDAY, 19), "t")
    assert (late_word.closed_at, late_word.closed_reason) == (local(FRIDAY, 19), "t")
    first = after_window_cancelled(None, local(FRIDAY, 9), "suspended", "a")
    second = after_window_cancelled(first, local(FRIDAY, 10), "closed", "b")
    assert after_window_cancelled(second, local(FRIDAY, 9), "suspended", "a") == second


def test_what_both_services_say_about_a_suspension_merges_in_any_order() -> None:
    declared = ("sp_1", FRIDAY, SATURDAY, "typhoon")
    words: list[Callable[[Suspension | None], Suspension]] = [
        lambda s: after_suspension_declared(s, *declared, local(FRIDAY, 0)),
        lambda s: after_suspension_declared(s, *declared, local(FRIDAY, 0, 1)),
        lambda s: after_suspension_lifted(s, "sp_1", local(FRIDAY, 20), FRIDAY),
        lambda s: after_suspension_lifted(s, "sp_1", local(FRIDAY, 20, 1), FRIDAY),
    ]  # fmt: skip
    results = set()
    for _ in range(10):
        random.shuffle(words)
        s: Suspension | None = None
        for word in words + words:
            s = word(s)
        results.add(s)
    assert results == {
        Suspension("sp_1", FRIDAY, SATURDAY, "typhoon", local(FRIDAY, 0), local(FRIDAY, 20), FRIDAY)
    }


# --- the projector: the same events in another interleaving give the same projection ----------


def _market(windows: list[MarketWindow]) -> MarketChanged:
    market = Market(
        id=MARKET,
        district=District.XIANGZHOU,
        name_zh="香洲夜市",
        name_en="Xiangzhou Night Market",
        location=Location(lat=22.27, lon=113.57),
        zones=[Category.COOKED_FOOD],
        windows=windows,
    )
    return MarketChanged(market_id=MARKET, market=market)


def _envelope(event: Event, at: datetime, n: int) -> RawEnvelope:
    wrapped = Envelope.wrap(event, source="/test", time=at, event_id=f"ev-{n}")
    return RawEnvelope.model_validate_json(wrapped.model_dump_json())


def topics() -> dict[str, list[RawEnvelope]]:
    """A day of events on the three topics, each topic in its own order."""
    booking = BookingCreated(
        market_id=MARKET, booking_id="bk_1", vendor_id="vd_1", stall_id="XZ-07-A001",
        date=FRIDAY, window_id="late", category=Category.COOKED_FOOD,
        starts_at=local(FRIDAY, 20, 30), ends_at=local(FRIDAY, 22), priority=False,
    )  # fmt: skip
    catalogue: list[tuple[Event, datetime]] = [
        (_market([EVENING]), local(FRIDAY, 8)),
        (StallChanged(market_id=MARKET, stall=Stall(id="XZ-07-A001", market_id=MARKET,
                                                    category=Category.COOKED_FOOD)),
         local(FRIDAY, 8)),
        (ScheduleChanged(market_id=MARKET, windows=[EVENING, LATE]), local(FRIDAY, 9)),
        (StallCodeIssued(market_id=MARKET, stall_id="XZ-07-A001", code_version=2),
         local(FRIDAY, 9)),
        (StallCodeRevoked(market_id=MARKET, stall_id="XZ-07-A001", code_version=2),
         local(FRIDAY, 10)),
        (MarketSuspensionDeclared(market_id=MARKET, suspension_id="sp_1", first_date=SATURDAY,
                                  last_date=SATURDAY, reason="event"), local(FRIDAY, 10)),
        (MarketSuspensionLifted(market_id=MARKET, suspension_id="sp_1", first_date=SATURDAY,
                                last_date=SATURDAY, reopened_from=SATURDAY), local(FRIDAY, 11)),
    ]  # fmt: skip
    bookings: list[tuple[Event, datetime]] = [
        (booking, local(FRIDAY, 10)),
        (BookingCancelled(market_id=MARKET, booking_id="bk_1", vendor_id="vd_1",
                          stall_id="XZ-07-A001", date=FRIDAY, window_id="late", late=False),
         local(FRIDAY, 11)),
    ]  # fmt: skip
    common: dict[str, Any] = {"market_id": MARKET, "date": FRIDAY, "district": District.XIANGZHOU}
    windows: list[tuple[Event, datetime]] = [
        (WindowOpened(**common, window_id="evening", closes_at=local(FRIDAY, 20)),
         local(FRIDAY, 17, 30)),
        (MarketSuspended(market_id=MARKET, district=District.XIANGZHOU, first_date=FRIDAY,
                         last_date=FRIDAY, reason="typhoon", suspension_id="cl_1"),
         local(FRIDAY, 18)),
        (WindowClosed(**common, window_id="evening", reason="typhoon"), local(FRIDAY, 18)),
        (WindowCancelled(**common, window_id="late", cause="closed", reason="typhoon"),
         local(FRIDAY, 18)),
        (MarketResumed(market_id=MARKET, district=District.XIANGZHOU), local(FRIDAY, 23)),
    ]  # fmt: skip
    n = 0
    out: dict[str, list[RawEnvelope]] = {}
    for name, events in (("catalogue", catalogue), ("bookings", bookings), ("windows", windows)):
        out[name] = []
        for event, at in events:
            n += 1
            out[name].append(_envelope(event, at, n))
    return out


async def project(envelopes: list[RawEnvelope]) -> InMemoryExpectationStore:
    store = InMemoryExpectationStore()
    handlers = {
        t.event_type(): (t, h) for t, h in projection_handlers(ExpectationProjector(store)).items()
    }
    for envelope in envelopes:
        model, handler = handlers[envelope.type]
        await handler(envelope.parse_data(model), envelope)
    return store


def interleave(streams: list[list[RawEnvelope]], rng: random.Random) -> list[RawEnvelope]:
    """One interleaving of the topics that keeps each topic's order, with replays of suffixes."""
    queues = [list(s) for s in streams]
    out: list[RawEnvelope] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        out.append(queue.pop(0))
        if rng.random() < 0.2:  # a redelivery of what came since the last commit
            out += out[-rng.randint(1, min(3, len(out))) :]
    return out


async def test_the_projection_is_the_same_whatever_the_interleaving_of_the_topics() -> None:
    streams = list(topics().values())
    live = await project([e for s in streams for e in s])
    rng = random.Random(7)
    for _ in range(20):
        rebuilt = await project(interleave(streams, rng))
        assert await rebuilt.dump() == await live.dump()

    # And what it answers: the closure cut the evening short, the late window was cancelled,
    # the revoked code is revoked, an older one superseded; the cancelled booking is gone.
    at = local(FRIDAY, 17, 45)
    assert await live.window_at(MARKET, at) == instance(EVENING, ends_at=local(FRIDAY, 18))
    assert await live.window_at(MARKET, local(FRIDAY, 21)) is None
    assert await live.current_or_next_window(MARKET, local(FRIDAY, 19)) == instance(
        EVENING, SATURDAY
    )
    assert await live.code_status(MARKET, "XZ-07-A001", 2) is CodeStatus.REVOKED
    assert await live.code_status(MARKET, "XZ-07-A001", 1) is CodeStatus.SUPERSEDED
    assert await live.code_status(MARKET, "XZ-07-A001", 3) is CodeStatus.CURRENT
    assert await live.expected_at(MARKET, "XZ-07-A001", local(FRIDAY, 21)) is None
    market = await live.get_market(MARKET)
    assert market is not None
    assert [w.id for w in market.windows] == ["evening", "late"]
    assert market.name_en == "Xiangzhou Night Market"
