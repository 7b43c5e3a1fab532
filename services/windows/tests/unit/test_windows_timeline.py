"""The timeline's boundaries, ids and lateness rules, without Redis or Kafka."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from windows.domain.schedule import MarketSchedule, WindowSpec
from windows.domain.timeline import (
    BoundaryKind,
    Timing,
    boundary_id,
    classify,
    local_today,
    materialise,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
EVENING = WindowSpec(
    "evening", "夜市", "Evening market", (1, 2, 3, 4, 5, 6, 7), time(17, 30), time(22, 30)
)
MORNING = WindowSpec("morning", "早市", "Morning market", (6, 7), time(6, 0), time(10, 0))
SATURDAY = date(2026, 11, 21)
FRIDAY = date(2026, 11, 20)


def schedule(*windows: WindowSpec, market: str = "XZ-01") -> MarketSchedule:
    return MarketSchedule(market, "xiangzhou", windows, T0)


def test_a_day_with_two_windows_has_eight_boundaries_in_local_time_converted_to_utc() -> None:
    found = materialise(schedule(EVENING, MORNING), SATURDAY, days=1)
    assert [(b.window_id, b.kind, b.due) for b in found] == [
        ("morning", BoundaryKind.OPENED, datetime(2026, 11, 20, 22, 0, tzinfo=UTC)),
        (
            "morning",
            BoundaryKind.CHECK_IN_DEADLINE_PASSED,
            datetime(2026, 11, 20, 22, 30, tzinfo=UTC),
        ),
        ("morning", BoundaryKind.CLOSING_SOON, datetime(2026, 11, 21, 1, 45, tzinfo=UTC)),
        ("morning", BoundaryKind.CLOSED, datetime(2026, 11, 21, 2, 0, tzinfo=UTC)),
        ("evening", BoundaryKind.OPENED, datetime(2026, 11, 21, 9, 30, tzinfo=UTC)),
        (
            "evening",
            BoundaryKind.CHECK_IN_DEADLINE_PASSED,
            datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        ),
        ("evening", BoundaryKind.CLOSING_SOON, datetime(2026, 11, 21, 14, 15, tzinfo=UTC)),
        ("evening", BoundaryKind.CLOSED, datetime(2026, 11, 21, 14, 30, tzinfo=UTC)),
    ]
    assert all(b.due.tzinfo is UTC and b.date == SATURDAY for b in found)


def test_a_window_not_running_that_weekday_has_no_boundaries() -> None:
    found = materialise(schedule(MORNING), FRIDAY, days=1)
    assert found == []


def test_a_week_is_materialised_with_each_weekday_rule() -> None:
    found = materialise(schedule(EVENING, MORNING), FRIDAY, days=8)
    evenings = {b.date for b in found if b.window_id == "evening"}
    mornings = {b.date for b in found if b.window_id == "morning"}
    assert evenings == {FRIDAY + timedelta(days=n) for n in range(8)}
    assert mornings == {SATURDAY, date(2026, 11, 22)}  # Fri 20 .. Fri 27


def test_shanghai_has_no_dst_so_summer_and_winter_offsets_are_both_eight_hours() -> None:
    summer = materialise(schedule(EVENING), date(2026, 7, 1), days=1)[0]
    winter = materialise(schedule(EVENING), date(2026, 1, 1), days=1)[0]
    assert summer.due == datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
    assert winter.due == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


def test_equal_due_times_are_ordered_by_kind() -> None:
    short = WindowSpec("short", "短", "Short", (5,), time(12, 0), time(12, 45))
    found = materialise(schedule(short), FRIDAY, days=1)
    # start + 30 min == end - 15 min: the deadline comes before "closing soon".
    assert [b.kind for b in found] == list(BoundaryKind)
    assert found[1].due == found[2].due


def test_settings_move_the_deadline_and_closing_soon() -> None:
    found = materialise(
        schedule(EVENING),
        FRIDAY,
        days=1,
        check_in_after=timedelta(minutes=45),
        closing_soon_before=timedelta(minutes=10),
    )
    by_kind = {b.kind: b.due for b in found}
    assert by_kind[BoundaryKind.CHECK_IN_DEADLINE_PASSED] == datetime(
        2026, 11, 20, 10, 15, tzinfo=UTC
    )
    assert by_kind[BoundaryKind.CLOSING_SOON] == datetime(2026, 11, 20, 14, 20, tzinfo=UTC)


def test_ids_are_stable_across_materialisations_and_distinct_per_boundary() -> None:
    first = materialise(schedule(EVENING, MORNING), FRIDAY)
    again = materialise(schedule(MORNING, EVENING), FRIDAY)
    assert [b.id for b in first] == [b.id for b in again]
    assert len({b.id for b in first}) == len(first)
    assert first[0].id == boundary_id("XZ-01", FRIDAY, "evening", BoundaryKind.OPENED)
    other_market = materialise(schedule(EVENING, MORNING, market="XZ-02"), FRIDAY)
    assert not {b.id for b in first} & {b.id for b in other_market}


def test_a_boundary_id_does_not_depend_on_the_window_times() -> None:
    moved = WindowSpec(
        "evening", "夜市", "Evening market", (1, 2, 3, 4, 5, 6, 7), time(18, 0), time(23, 0)
    )
    before = materialise(schedule(EVENING), FRIDAY, days=1)
    after = materialise(schedule(moved), FRIDAY, days=1)
    assert [b.id for b in before] == [b.id for b in after]
    assert before[0].due != after[0].due


def test_local_today_uses_shanghai_date() -> None:
    assert local_today(datetime(2026, 11, 20, 16, 30, tzinfo=UTC)) == SATURDAY
    assert local_today(datetime(2026, 11, 20, 15, 59, tzinfo=UTC)) == FRIDAY


@pytest.mark.parametrize(
    ("after", "timing", "late_by"),
    [
        (timedelta(seconds=-1), Timing.NOT_DUE, timedelta(0)),
        (timedelta(0), Timing.ON_TIME, timedelta(0)),
        (timedelta(seconds=5), Timing.ON_TIME, timedelta(0)),
        (timedelta(minutes=7), Timing.LATE, timedelta(minutes=7)),
        (timedelta(days=1), Timing.LATE, timedelta(days=1)),
        (timedelta(days=1, seconds=1), Timing.STALE, timedelta(days=1, seconds=1)),
    ],
)
def test_lateness_classification(after: timedelta, timing: Timing, late_by: timedelta) -> None:
    boundary = materialise(schedule(EVENING), FRIDAY, days=1)[0]
    result = classify(boundary.due, boundary.due + after)
    assert (result.timing, result.late_by) == (timing, late_by)
    assert result.publishable is (timing in (Timing.ON_TIME, Timing.LATE))
