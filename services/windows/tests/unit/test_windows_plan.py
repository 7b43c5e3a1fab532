"""Plans: which timers a market should have, given its schedule, suspensions and the time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from contracts.catalogue import District
from contracts.events import MarketResumed, MarketSuspended, WindowOpened
from windows.domain.plan import Plan, Suspension, plan_market
from windows.domain.schedule import MarketSchedule, WindowSpec

pytestmark = pytest.mark.unit

FRIDAY = date(2026, 11, 20)
EVENING = WindowSpec(
    "evening", "夜市", "Evening", (1, 2, 3, 4, 5, 6, 7), time(17, 30), time(22, 30)
)
SCHEDULE = MarketSchedule("XZ-01", "xiangzhou", (EVENING,), datetime(2026, 11, 1, tzinfo=UTC))
NOON_FRIDAY = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 local


def plan(suspensions: list[Suspension], now: datetime = NOON_FRIDAY) -> Plan:
    return plan_market(SCHEDULE, District.XIANGZHOU, suspensions, now, days=3)


def typhoon(**changes: Any) -> Suspension:
    s = Suspension(
        id="sp_1",
        first_date=FRIDAY + timedelta(days=1),
        last_date=FRIDAY + timedelta(days=1),
        reason="台风",
        declared_at=NOON_FRIDAY,
    )
    return replace(s, **changes)


def dates(p: Plan) -> set[date]:
    return {t.day for t in p.items if t.day is not None}


def test_every_instance_of_the_horizon_is_planned_with_its_four_boundaries() -> None:
    p = plan([])
    assert dates(p) == {FRIDAY, FRIDAY + timedelta(days=1), FRIDAY + timedelta(days=2)}
    assert len(p.items) == 12
    opened = [t for t in p.items if t.kind == "opened"]
    assert all(isinstance(t.event, WindowOpened) for t in opened)
    assert p.valid == {t.id for t in p.items}


def test_an_instance_that_already_ended_is_not_announced_but_its_timers_stay_valid() -> None:
    late_night = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 23:00 local: evening is over
    p = plan([], now=late_night)
    assert FRIDAY not in dates(p)
    friday_ids = {t.id for t in plan([]).items if t.day == FRIDAY}
    assert friday_ids <= p.valid  # a service back from an outage still catches them up


def test_no_window_is_planned_inside_a_suspension_which_is_announced_instead() -> None:
    p = plan([typhoon()])
    saturday = FRIDAY + timedelta(days=1)
    assert saturday not in dates(p)
    assert p.cause(saturday) == ("suspended", "台风")
    suspended, resumed = [t for t in p.items if t.day is None]
    assert isinstance(suspended.event, MarketSuspended)
    assert suspended.due == datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # Saturday 00:00 local
    assert isinstance(resumed.event, MarketResumed)
    assert resumed.due == datetime(2026, 11, 21, 16, 0, tzinfo=UTC)  # Sunday 00:00 local


def test_lifting_early_restores_later_dates_and_resumes_at_the_lift() -> None:
    lifted_at = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # Saturday 10:00 local
    long = typhoon(last_date=FRIDAY + timedelta(days=2))
    p = plan(
        [replace(long, lifted_at=lifted_at, reopened_from=FRIDAY + timedelta(days=1))],
        now=lifted_at,
    )
    # lifted on its first day: the whole range reopens, evening of Saturday included
    assert FRIDAY + timedelta(days=1) in dates(p)
    assert not [t for t in p.items if t.day is None]  # it never took effect: nothing announced


def test_a_suspension_lifted_after_it_began_ends_with_market_resumed_at_the_lift() -> None:
    lifted_at = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # Saturday 10:00 local
    long = typhoon(last_date=FRIDAY + timedelta(days=2))
    p = plan(
        [replace(long, lifted_at=lifted_at, reopened_from=FRIDAY + timedelta(days=2))],
        now=lifted_at,
    )
    assert FRIDAY + timedelta(days=1) not in dates(p)
    assert FRIDAY + timedelta(days=2) in dates(p)
    resumed = next(t for t in p.items if t.kind == "resumed")
    assert resumed.due == datetime(2026, 11, 21, 16, 0, tzinfo=UTC)  # Sunday 00:00 local


def test_a_closure_shuts_the_rest_of_its_day() -> None:
    closure = typhoon(id="cl_1", first_date=FRIDAY, last_date=FRIDAY, closure=True)
    p = plan([closure])
    assert FRIDAY not in dates(p)
    assert p.cause(FRIDAY) == ("closed", "台风")
    assert next(t for t in p.items if t.kind == "suspended").due == NOON_FRIDAY


def test_the_stamp_is_the_newest_input() -> None:
    assert plan([]).stamp_ms == int(SCHEDULE.as_of.timestamp() * 1000)
    assert plan([typhoon()]).stamp_ms == int(NOON_FRIDAY.timestamp() * 1000)
