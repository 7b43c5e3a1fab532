"""`make bench`'s replay: the synthetic days it publishes (no broker, no timing)."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from datetime import timedelta

import pytest

from contracts.catalogue import Catalogue
from contracts.events import (
    BookingCreated,
    CaseOpened,
    CheckInDeadlinePassed,
    ScanRecorded,
    WarningIssued,
    WindowClosed,
    WindowClosingSoon,
    WindowEvent,
    WindowOpened,
)
from contracts.seed import load_catalogue
from stalltest.bench_replay import (
    FIRST_DAY,
    SERVICES,
    Item,
    build_sample,
    day_items,
    duration,
    morning_after,
    replay_days,
    service_now,
    year_share,
)
from stalltest.bench_reporting import DAY, NOW, full_day

pytestmark = pytest.mark.unit

#: What bench_reporting's day was before ``full_day`` took a day: its ids and times, hashed.
DEFAULT_DAY_EVENTS = 4738
DEFAULT_DAY_DIGEST = "1aabb8a65f9ac16d7cd8b8ee343ed90a6ce1904b3b74e93f302060332d3aa5de"
ID_FIELDS = (
    "market_id",
    "booking_id",
    "vendor_id",
    "stall_id",
    "scan_id",
    "warning_id",
    "subject_id",
    "case_id",
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def ids_of(items: list[Item], kind: type, name: str) -> list[str]:
    return [str(getattr(i.event, name)) for i in items if isinstance(i.event, kind)]


def test_the_reported_day_of_bench_reporting_is_unchanged(catalogue: Catalogue) -> None:
    day = full_day(catalogue, random.Random(20261120))
    digest = hashlib.sha256()
    for event, at in day.sent:
        ids = "|".join(str(getattr(event, n, "")) for n in ID_FIELDS)
        digest.update(f"{event.event_type()}|{ids}|{at.isoformat()}\n".encode())
    assert len(day.sent) == DEFAULT_DAY_EVENTS
    assert digest.hexdigest() == DEFAULT_DAY_DIGEST
    explicit = full_day(catalogue, random.Random(20261120), day=DAY, now=NOW)
    assert explicit.sent == day.sent
    assert morning_after(DAY) == NOW


def test_ids_are_unique_across_days(catalogue: Catalogue) -> None:
    days = replay_days(FIRST_DAY, 3)
    at = NOW - timedelta(days=30)
    per_day = [day_items(catalogue, d, at) for d in days]
    for kind, name in (
        (BookingCreated, "booking_id"),
        (BookingCreated, "vendor_id"),
        (ScanRecorded, "scan_id"),
        (WarningIssued, "warning_id"),
        (WarningIssued, "subject_id"),
        (CaseOpened, "case_id"),
    ):
        found = [ids_of(items, kind, name) for items in per_day]
        assert all(found), (kind, name)
        everything = [i for ids in found for i in ids]
        assert len(set(everything)) == len(everything), (kind, name)
    event_ids = [i.event_id for items in per_day for i in items if i.event_id is not None]
    assert len(set(event_ids)) == len(event_ids)


def test_each_window_instance_is_announced_at_each_boundary(catalogue: Catalogue) -> None:
    day = FIRST_DAY + timedelta(days=1)  # a Saturday: the weekend windows run too
    items = day_items(catalogue, day, NOW - timedelta(days=30))
    windows = [i for i in items if isinstance(i.event, WindowEvent)]
    instances = {
        (m.id, w.id) for m in catalogue.markets for w in m.windows if day.isoweekday() in w.days
    }
    kinds = Counter(type(i.event) for i in windows)
    assert kinds == dict.fromkeys(
        (WindowOpened, CheckInDeadlinePassed, WindowClosingSoon, WindowClosed), len(instances)
    )
    assert {(i.event.market_id, i.event.window_id) for i in windows} == instances
    assert all(i.event.date == day and i.event_id for i in windows)
    assert {i.source for i in windows} == {"/services/windows"}
    opened = next(i for i in windows if isinstance(i.event, WindowOpened))
    assert opened.at < opened.event.closes_at


def test_the_sample_is_the_catalogue_then_the_days_in_order(catalogue: Catalogue) -> None:
    days = replay_days(FIRST_DAY, 2)
    sample = build_sample(catalogue, days)
    head = sample.items[: sample.catalogue_count]
    rest = sample.items[sample.catalogue_count :]
    assert sample.catalogue_count == len(catalogue.markets) + len(catalogue.stalls)
    assert {i.event.topic for i in head} == {"catalogue"}
    assert len(rest) == sum(sample.per_day)
    assert [i.at for i in rest] == sorted(i.at for i in rest)
    assert max(i.at for i in sample.items) < service_now(days)
    assert sum(sample.by_topic().values()) == len(sample.items)
    shares = {s.name: year_share(sample, s.topics) for s in SERVICES}
    assert shares["reporting"] == 1
    assert 0 < shares["allocation"] < shares["windows"] < shares["inspection"] < 1


def test_durations_read_as_hours_minutes_or_seconds() -> None:
    assert duration(42.4) == "42 s"
    assert duration(185) == "3 min 05 s"
    assert duration(3725) == "1 h 02 min"
