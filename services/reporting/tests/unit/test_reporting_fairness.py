"""The fairness figures' arithmetic: the Gini coefficient, ISO weeks, tallies of market-days."""

from __future__ import annotations

from datetime import date
from itertools import permutations

import pytest

from reporting.domain.fairness import FairnessTally, gini, merged, parse_week, tally, week_label
from reporting.domain.figures import BookingFacts, DrawFacts, MarketDayFacts

pytestmark = pytest.mark.unit


def test_gini_by_hand() -> None:
    # [0, 0, 1, 3]: n = 4, mean = 1. |xi - xj| over the 6 unordered pairs: 0-0: 0, 0-1: 1 (twice),
    # 0-3: 3 (twice), 1-3: 2, so 10; over the 16 ordered pairs 20; mean absolute difference
    # 20 / 16 = 1.25; Gini = 1.25 / (2 × 1) = 0.625.
    assert gini([0, 0, 1, 3]) == 0.625
    for order in permutations([0, 0, 1, 3]):
        assert gini(list(order)) == 0.625
    # [1, 1, 1, 1, 0]: mean 0.8; ordered pairs differing: 4 × 2 = 8, each by 1; MAD 8 / 25 =
    # 0.32; Gini = 0.32 / 1.6 = 0.2.
    assert gini([1, 1, 1, 1, 0]) == 0.2
    assert gini([2, 2, 2]) == 0.0
    assert gini([5]) == 0.0
    assert gini([0, 0, 0, 7]) == 0.75  # one of four has everything: (n - 1) / n
    assert gini([1, 2]) == round(1 / 6, 4)  # MAD 2/4 = 0.5, mean 1.5: 0.5 / 3
    assert gini([]) is None
    assert gini([0, 0]) is None


def test_iso_weeks() -> None:
    assert parse_week("2026-W49") == date(2026, 11, 30)
    assert week_label(date(2026, 11, 30)) == "2026-W49"
    assert parse_week("2026-W53") == date(2026, 12, 28)  # 2026 has 53 ISO weeks
    assert week_label(parse_week("2025-W01")) == "2025-W01"
    assert parse_week("2025-W01") == date(2024, 12, 30)
    for bad in ["2025-W53", "2026-W00", "2026-W54", "2026-49", "2026W49", "26-W49", "2026-W4"]:
        with pytest.raises(ValueError, match="ISO week"):
            parse_week(bad)


def booking(
    vendor: str,
    *,
    priority: bool = False,
    cancelled: bool = False,
    no_show: bool = False,
    ended_by_suspension: bool = False,
) -> BookingFacts:
    return BookingFacts(
        created=True,
        vendor_id=vendor,
        priority=priority,
        cancelled=cancelled,
        no_show=no_show,
        ended_by_suspension=ended_by_suspension,
    )


def test_a_tally_counts_stall_days_per_active_vendor() -> None:
    monday = MarketDayFacts(
        bookings={
            "b1": booking("a"),
            "b2": booking("a", no_show=True),  # a no-show still had the stall
            "b3": booking("b", priority=True),
            "b4": booking("c", cancelled=True),  # active, with 0
            "b5": booking("a", ended_by_suspension=True),
            "b6": BookingFacts(cancelled=True),  # its creation has not come: nothing
        },
        draws={"evening": DrawFacts(frozenset({"a", "b", "d"}), frozenset({"a", "b"}), 2)},
    )
    # A window booked after its draw time with nobody applying: allocation completed an empty
    # draw for it, which is no draw.
    tuesday = MarketDayFacts(
        bookings={"b7": booking("a")},
        draws={"evening": DrawFacts(frozenset(), frozenset(), 20)},
    )
    t = tally([monday, tuesday])
    assert t.stall_days_by_vendor == {"a": 3, "b": 1, "c": 0, "d": 0}
    assert t.as_json() == {
        "gini": 0.625,
        "stall_days": 4,
        "priority_stall_days": 1,
        "priority_stall_day_share": 0.25,
        "active_vendors": 4,
        "vendors_served": 2,
        "draws": 1,
        "applicants": 3,
        "applicants_won": 2,
        "applicant_win_share": 0.6667,
    }
    # Another market's week: vendor a again, and a draw whose applicants all lost.
    other = tally(
        [
            MarketDayFacts(
                bookings={"b8": booking("a")},
                draws={"morning": DrawFacts(frozenset({"e"}), frozenset(), 0)},
            )
        ]
    )
    both = merged([t, other]).as_json()
    assert (both["active_vendors"], both["stall_days"], both["draws"]) == (5, 5, 2)
    assert both["gini"] == gini([4, 1, 0, 0, 0])
    assert (both["applicants"], both["applicants_won"]) == (4, 2)
    empty = FairnessTally().as_json()
    assert empty["gini"] is None
    assert empty["priority_stall_day_share"] is None
    assert empty["applicant_win_share"] is None
