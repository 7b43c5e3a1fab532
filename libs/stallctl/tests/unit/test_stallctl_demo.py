"""``stallctl demo``'s pure parts: the day plan keeps the rules it plays against (one booking
per stall and window, one place per vendor, permits, check-in and cancellation times), the
office's case steps go round the loop, the tally counts as reporting does, the report lines up."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import pytest
from typer.testing import CliRunner

from contracts.catalogue import Category
from contracts.seed import load_catalogue
from stallctl.cli import app
from stallctl.demo import (
    CHECKS_IN,
    DayPlan,
    Expect,
    Fate,
    Step,
    case_steps,
    day_slots,
    demo_violations,
    make_vendors,
    next_saturday,
    plan_day,
    select_markets,
)
from stallctl.demo_draws import plan_draws
from stallctl.demo_report import (
    COMPARED,
    CaseTally,
    DistrictReport,
    DistrictTally,
    agreement,
    differences,
    format_report,
    progress_line,
    spread,
    width,
)
from stallctl.demo_run import demo_ports, parse_day
from stallkit.clock import MARKET_TZ

pytestmark = pytest.mark.unit

SATURDAY = date(2026, 12, 12)
CATALOGUE = load_catalogue()


def full_plan(seed: int = 7, vendors: int = 2000) -> DayPlan:
    rng = random.Random(seed)
    people = make_vendors(CATALOGUE, vendors, SATURDAY, rng)
    return plan_day(CATALOGUE, SATURDAY, people, rng, speed=300)


PLAN = full_plan()


def local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 12, hour, minute, tzinfo=MARKET_TZ)


def test_the_default_day_is_the_coming_saturday_when_every_market_opens() -> None:
    assert next_saturday(date(2026, 12, 11)) == SATURDAY  # a Friday
    assert next_saturday(SATURDAY) == SATURDAY + timedelta(days=7)
    assert next_saturday(date(2026, 12, 7)) == SATURDAY  # a Monday
    slots = day_slots(CATALOGUE, SATURDAY)
    assert {s.market_id for s in slots} == {m.id for m in CATALOGUE.markets}
    monday = day_slots(CATALOGUE, SATURDAY + timedelta(days=2))
    assert {s.window_id for s in monday} == {"morning", "evening"}  # no weekend markets


def test_markets_are_chosen_by_id_or_district() -> None:
    small = select_markets(CATALOGUE, ["XZ-06", "doumen"])
    assert {m.id for m in small.markets} == {"XZ-06", *(f"DM-0{n}" for n in range(1, 7))}
    assert {s.market_id for s in small.stalls} == {m.id for m in small.markets}
    assert select_markets(CATALOGUE, []) is CATALOGUE
    with pytest.raises(ValueError, match="XX-99"):
        select_markets(CATALOGUE, ["XX-99"])


def test_the_plan_is_the_same_for_the_same_seed() -> None:
    again = full_plan()
    assert [(i.vendor.id, i.stall_id, i.book_at, i.fate) for i in again.intents] == [
        (i.vendor.id, i.stall_id, i.book_at, i.fate) for i in PLAN.intents
    ]
    assert [(s.stall_id, s.at) for s in again.scans] == [(s.stall_id, s.at) for s in PLAN.scans]


def test_the_day_covers_every_window_with_time_to_start_and_to_close_cases() -> None:
    first = min(s.starts_at for s in PLAN.slots)
    assert PLAN.starts_at <= first - timedelta(hours=3)
    assert PLAN.ends_at == local(23, 55)  # the evening closes at 22:30: 3 h after is past midnight
    assert len(PLAN.intents) > 1500  # thousands of vendors for 1,703 stall-windows
    assert {i.slot.district for i in PLAN.intents} == set(PLAN.districts())


def test_no_stall_is_planned_twice_for_a_window_and_walk_ins_take_released_stalls() -> None:
    held = Counter((i.slot.key, i.stall_id) for i in PLAN.intents if not i.walk_in)
    assert max(held.values()) == 1
    no_shows = {(i.slot.key, i.stall_id) for i in PLAN.intents if i.fate is Fate.NO_SHOW}
    walk_ins = [i for i in PLAN.intents if i.walk_in]
    assert walk_ins
    for intent in walk_ins:
        assert (intent.slot.key, intent.stall_id) in no_shows
        # booked once the no-show deadline (start + 30 min) has released the stall
        assert intent.book_at >= intent.slot.starts_at + timedelta(minutes=40)
        assert intent.check_in_at is not None
        assert intent.book_at < intent.check_in_at <= intent.book_at + timedelta(minutes=30)


def test_no_vendor_is_planned_in_two_places_at_once_and_only_where_permitted() -> None:
    by_vendor: dict[str, list[tuple[datetime, datetime]]] = {}
    for intent in PLAN.intents:
        assert intent.vendor.may_book(intent.category, SATURDAY)
        spans = by_vendor.setdefault(intent.vendor.id, [])
        start, end = intent.slot.starts_at, intent.slot.ends_at
        assert all(end <= s or e <= start for s, e in spans), intent.vendor.id
        spans.append((start, end))
    stall_category = {s.id: s.category for s in CATALOGUE.stalls}
    assert all(stall_category[i.stall_id] is i.category for i in PLAN.intents)


def test_each_district_draws_one_oversubscribed_window_two_days_on() -> None:
    rng = random.Random(3)
    people = make_vendors(CATALOGUE, 2000, SATURDAY, rng)
    by_id = {v.id: v for v in people}
    draws = plan_draws(CATALOGUE, SATURDAY, people, rng, apply_from=local(6))
    monday = SATURDAY + timedelta(days=2)
    assert {d.district for d in draws} == {m.district.value for m in CATALOGUE.markets}
    category = {s.id: s.category for s in CATALOGUE.stalls}
    applicants: list[str] = []
    for draw in draws:
        assert draw.day == monday
        assert draw.draw_at == local(20)  # allocation's default: 20:00 on D-2
        stalls = [s for s in CATALOGUE.stalls if s.market_id == draw.market_id and s.active]
        assert draw.stalls == len(stalls)
        assert len(draw.applications) > draw.stalls  # oversubscribed
        assert any(a.priority for a in draw.applications)
        assert any(a.stall_ids for a in draw.applications)  # some rank stalls
        assert any(not a.stall_ids for a in draw.applications)  # some take any
        for application in draw.applications:
            vendor = by_id[application.vendor_id]
            assert any(vendor.may_book(s.category, monday) for s in stalls)
            assert len(application.stall_ids) <= 3
            for stall_id in application.stall_ids:  # only stalls of the market it may have
                assert stall_id.startswith(draw.market_id)
                assert vendor.may_book(category[stall_id], monday)
            assert local(6) <= application.at <= local(18)  # well before the draw
            applicants.append(application.vendor_id)
    assert len(applicants) == len(set(applicants))  # one draw each: the windows overlap


def test_check_ins_and_cancellations_fall_where_the_rules_put_them() -> None:
    for intent in PLAN.intents:
        start = intent.slot.starts_at
        if not intent.walk_in:
            assert PLAN.starts_at < intent.book_at <= start - timedelta(minutes=45)
        if intent.fate in CHECKS_IN:
            assert intent.check_in_at is not None
            assert intent.check_in_at > intent.book_at
            assert start - timedelta(minutes=30) <= intent.check_in_at
            if not intent.walk_in:  # a walk-in has until 30 min after its booking
                assert intent.check_in_at <= start + timedelta(minutes=30)
        else:
            assert intent.check_in_at is None
        if intent.fate is Fate.CANCELS:
            assert intent.cancel_at is not None
            assert intent.book_at < intent.cancel_at <= start - timedelta(hours=2)
        elif intent.fate is Fate.CANCELS_LATE:
            assert intent.cancel_at is not None
            assert start - timedelta(hours=2) < intent.cancel_at < start
        else:
            assert intent.cancel_at is None
    fates = Counter(i.fate for i in PLAN.intents)
    assert all(fates[f] > 0 for f in Fate)


def test_the_followed_vendor_books_once_checks_in_and_stays_on_after_the_close() -> None:
    featured = PLAN.featured
    assert featured is not None
    assert featured.slot == PLAN.slots[0]
    assert featured.fate is Fate.OVERTIME
    assert [i.vendor.id for i in PLAN.intents].count(featured.vendor.id) == 1
    scans = [s for s in PLAN.scans if s.intent == featured.key]
    assert [s.expect for s in scans] == [Expect.COMPLIANT, Expect.OVERTIME, Expect.OVERTIME]
    assert featured.slot.starts_at < scans[0].at < featured.slot.ends_at < scans[1].at
    assert all(s.occupied and s.vendor_id == featured.vendor.id for s in scans)


def test_patrols_find_every_kind_of_outcome_within_the_day() -> None:
    expects = Counter(s.expect for s in PLAN.scans)
    assert all(expects[e] > 0 for e in Expect)
    assert all(PLAN.starts_at < s.at < PLAN.ends_at for s in PLAN.scans)
    for scan in PLAN.scans:
        assert not (scan.vendor_id and scan.identity_number)
        if scan.occupied:  # inspection needs to know who is there
            assert scan.vendor_id or scan.identity_number
        if scan.expect is Expect.OVERTIME:
            slot = next(i.slot for i in PLAN.intents if i.key == scan.intent)
            assert scan.at > slot.ends_at


def test_refusals_are_planned_where_the_rules_refuse() -> None:
    kinds = Counter(p.expect for p in PLAN.probes)
    assert set(kinds) == {
        "stall_taken", "overlapping_booking", "category_not_permitted",
        "health_certificate_required",
    }  # fmt: skip
    intents = {i.key: i for i in PLAN.intents}
    for probe in PLAN.probes:
        category = next(s.category for s in CATALOGUE.stalls if s.id == probe.stall_id)
        if probe.expect == "stall_taken":
            assert probe.after is not None
            taken = intents[probe.after]
            assert (taken.slot, taken.stall_id) == (probe.slot, probe.stall_id)
            assert probe.at > taken.book_at
        elif probe.expect == "overlapping_booking":
            assert probe.after is not None
            held = intents[probe.after]
            assert held.vendor == probe.vendor
            assert held.slot.overlaps(probe.slot)
            assert probe.vendor.may_book(category, SATURDAY)
        elif probe.expect == "category_not_permitted":
            assert category not in probe.vendor.categories
        else:
            assert category is Category.COOKED_FOOD
            assert probe.vendor.health_until is not None
            assert probe.vendor.health_until < SATURDAY


def test_the_office_takes_a_case_round_the_loop_in_order() -> None:
    opened = local(10, 40)
    steps = case_steps(opened, opened + timedelta(hours=2), local(23, 55), random.Random(3),
                       featured=True)  # fmt: skip
    names = [s for _, s in steps]
    assert names == [
        Step.FILE, Step.DISPATCH, Step.HANDLE, Step.SEND_BACK, Step.HANDLE, Step.VERIFY,
        Step.CLOSE, Step.EVALUATE,
    ]  # fmt: skip
    times = [t for t, _ in steps]
    assert times == sorted(times)
    assert times[0] > opened
    handled = [t for t, s in steps if s is Step.HANDLE]
    assert all(t <= opened + timedelta(hours=2) for t in handled)  # the followed case is on time


def test_some_cases_are_handled_late_and_steps_after_the_day_wait() -> None:
    opened, ends = local(8), local(23, 55)
    runs = [
        case_steps(opened, opened + timedelta(hours=2), ends, random.Random(n)) for n in range(200)
    ]
    late = [
        r for r in runs if any(s is Step.HANDLE and t > opened + timedelta(hours=2) for t, s in r)
    ]
    assert 10 < len(late) < 60
    cut = case_steps(local(23, 40), local(23, 40) + timedelta(hours=2), ends, random.Random(1))
    assert all(t < ends for t, _ in cut)
    assert len(cut) < 5


def test_the_demo_catalogue_shortens_deadlines_to_hours() -> None:
    text = resources.files("inspection").joinpath("catalogue/violations.json").read_text("utf-8")
    packaged = json.loads(text)
    shortened = demo_violations(packaged)
    before = {v["type"]: v["deadline_hours"] for v in packaged["violations"]}
    after = {v["type"]: v["deadline_hours"] for v in shortened["violations"]}
    assert after == {k: max(1, h // 12) for k, h in before.items()}
    assert after["overtime_vending"] == 2


def test_the_tally_counts_as_reporting_does() -> None:
    tally = DistrictTally()
    tally.bookings.update({"bk_1": True, "bk_2": False, "bk_3": False, "bk_4": True})
    tally.checked_in.add("bk_1")
    tally.cancelled.update({"bk_2": False, "bk_3": True})
    tally.scans.update({"sc_1": "compliant", "sc_2": "overtime", "sc_3": "compliant"})
    tally.warnings.add("wn_1")
    opened = datetime(2026, 12, 12, 2, tzinfo=UTC)
    on_time = CaseTally(opened, opened + timedelta(hours=2))
    on_time.handled.append((opened + timedelta(minutes=30), True))
    on_time.closed_at, on_time.score = opened + timedelta(hours=1), 5
    sent_back = CaseTally(opened, opened + timedelta(hours=2))
    sent_back.handled.append((opened + timedelta(minutes=30), True))
    sent_back.sent_back.append(opened + timedelta(minutes=40))  # its handling no longer stands
    waiting = CaseTally(opened, opened + timedelta(hours=4))
    tally.cases.update({"cs_1": on_time, "cs_2": sent_back, "cs_3": waiting})
    at = opened + timedelta(hours=3)  # past cs_2's deadline, not cs_3's
    figures = tally.figures(at)
    assert figures == {
        "bookings": 4, "priority_bookings": 2, "check_ins": 1, "no_shows": 1,
        "cancellations": 2, "late_cancellations": 1, "scans": 3,
        "scans_by_outcome": {"compliant": 2, "overtime": 1}, "warnings": 1,
        "cases_opened": 3, "cases_closed": 1, "disposals_due": 2, "disposed_on_time": 1,
        "cohort_closed": 1, "evaluations": 1, "satisfied": 1,
    }  # fmt: skip
    assert set(figures) == set(COMPARED)
    assert differences(figures, figures) == []
    assert differences(figures, {**figures, "no_shows": 2}) == ["no_shows: tally 1, report 2"]


def figures(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "bookable_stall_windows": 369, "bookings": 340, "priority_share": 0.3618,
        "check_ins": 301, "occupancy_rate": 0.8157, "no_shows": 25, "cancellations": 14,
        "late_cancellations": 6, "scans": 290, "compliant_share": 0.8, "warnings": 30,
        "cases_opened": 12, "cases_closed": 9, "on_time_disposal_rate": 0.9167,
        "closure_rate": 0.75, "satisfaction": None,
    }  # fmt: skip
    return base | overrides


def test_the_report_lines_up_with_chinese_names_and_says_whether_it_agrees() -> None:
    fairness = {"active_vendors": 300, "vendors_served": 280, "stall_days": 320,
                "priority_stall_day_share": 0.35, "gini": 0.1234}  # fmt: skip
    rows = [
        DistrictReport("xiangzhou", 14, figures(), fairness),
        DistrictReport(
            "hengqin",
            3,
            figures(bookings=7, satisfaction=1.0),
            None,
            ["no_shows: tally 1, report 2"],
        ),
        DistrictReport("city", 17, figures(), fairness),
    ]
    text = format_report("2026-12-12", rows, ["extra line"])
    assert "香洲区 xiangzhou" in text
    assert "横琴 hengqin" in text
    assert "全市 city" in text
    assert "36.2%" in text
    assert "91.7%" in text
    assert "—" in text
    assert "0.123" in text
    assert text.rstrip().endswith("extra line")
    for block in text.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith("  ")]
        if lines:  # every row of a table is as wide as its header
            assert len({width(ln) for ln in lines[:2]}) == 1
            assert all(width(ln) <= width(lines[0]) for ln in lines)
    ok, verdict = agreement(rows)
    assert not ok
    assert "hengqin" in verdict
    assert "no_shows" in verdict
    ok, verdict = agreement([rows[0], rows[2]])
    assert ok
    assert "1 districts" in verdict


def test_progress_and_spread_lines() -> None:
    line = progress_line(0.5, local(13, 12), "午间", {"booked": 3})
    assert line.startswith("[############............]  50% 13:12 · 午间 · booked 3")
    assert progress_line(1.7, local(23), "x", {}).startswith("[" + "#" * 24 + "] 100%")
    text = spread({"vd_a": 1, "vd_b": 2, "vd_c": 1}, 5)
    assert text.endswith("0 → 2, 1 → 2, 2 → 1")


def test_the_command_line_checks_its_options_before_starting_anything() -> None:
    assert parse_day("2026-12-12") == SATURDAY
    assert parse_day(None) is None
    with pytest.raises(ValueError, match="not a date"):
        parse_day("12/12/2026")
    ports = demo_ports(20000, reporting=20100)
    assert (ports.broker, ports.allocation, ports.reporting) == (20000, 20002, 20100)
    free = demo_ports(None, allocation=20002)
    assert free.allocation == 20002
    assert len(set(vars(free).values())) == 6
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--date", "2026-13-01"])
    assert result.exit_code == 2
    assert "not a date" in result.output
    result = runner.invoke(app, ["demo", "--markets", "XX-99", "--exit"])
    assert result.exit_code == 2
    assert "XX-99" in result.output
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--speed" in result.output
