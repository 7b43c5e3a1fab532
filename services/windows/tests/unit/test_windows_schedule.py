"""The schedule projection's rules, without Redis or Kafka."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from windows.adapters.schedule_store import schedule_from_json, schedule_to_json
from windows.domain.schedule import MarketSchedule, ReplaceSchedule, WindowSpec, apply_schedule

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
EVENING = WindowSpec(
    "evening", "夜市", "Evening market", (1, 2, 3, 4, 5, 6, 7), time(17, 30), time(22, 30)
)
MORNING = WindowSpec("morning", "早市", "Morning market", (6, 7), time(6, 0), time(10, 0))


def replace_cmd(
    windows: tuple[WindowSpec, ...], as_of: datetime, district: str | None = "xiangzhou"
) -> ReplaceSchedule:
    return ReplaceSchedule(market_id="XZ-03", district=district, windows=windows, as_of=as_of)


def test_first_change_creates_the_schedule() -> None:
    schedule = apply_schedule(None, replace_cmd((EVENING,), T0))
    assert schedule == MarketSchedule("XZ-03", "xiangzhou", (EVENING,), T0)


def test_newer_change_replaces_windows_and_keeps_known_district() -> None:
    first = apply_schedule(None, replace_cmd((EVENING,), T0))
    later = apply_schedule(first, replace_cmd((EVENING, MORNING), T0 + timedelta(hours=1), None))
    assert later is not None
    assert later.windows == (EVENING, MORNING)
    assert later.district == "xiangzhou"
    assert later.as_of == T0 + timedelta(hours=1)


def test_older_change_is_ignored() -> None:
    current = apply_schedule(None, replace_cmd((EVENING, MORNING), T0))
    assert apply_schedule(current, replace_cmd((EVENING,), T0 - timedelta(seconds=1))) is None


def test_change_at_the_same_time_applies_in_arrival_order() -> None:
    current = apply_schedule(None, replace_cmd((EVENING,), T0))
    assert apply_schedule(current, replace_cmd((MORNING,), T0)) is not None


def test_occurrences_follow_weekdays_in_local_time() -> None:
    schedule = MarketSchedule("XZ-03", "xiangzhou", (EVENING, MORNING), T0)
    saturday, monday = date(2026, 11, 21), date(2026, 11, 23)
    assert [o.window_id for o in schedule.occurrences_on(saturday)] == ["morning", "evening"]
    assert [o.window_id for o in schedule.occurrences_on(monday)] == ["evening"]
    evening = schedule.occurrences_on(monday)[0]
    assert evening.starts_at.astimezone(UTC) == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert evening.ends_at - evening.starts_at == timedelta(hours=5)


def test_next_occurrences_skip_windows_that_ended() -> None:
    schedule = MarketSchedule("XZ-03", "xiangzhou", (EVENING,), T0)
    # 2026-11-23 23:00 local: tonight's evening window is over.
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    upcoming = schedule.next_occurrences(now, days=2)
    assert [o.date for o in upcoming] == [date(2026, 11, 24)]


def test_schedule_round_trips_through_storage_form() -> None:
    schedule = MarketSchedule("XZ-03", None, (EVENING, MORNING), T0)
    assert schedule_from_json(schedule_to_json(schedule)) == schedule
