"""Fairness figures: how evenly the stalls went round, per ISO week, from the same facts.

A stall-day is a booking that stood (created, not cancelled, not ended by a market suspension;
a no-show still had the stall). Per scope (market, district, city) and ISO week, Monday to
Sunday of the windows' local dates:

- active vendors: those with a booking created that week, or who applied in a draw of that
  week; an applicant who got nothing counts with 0 stall-days;
- ``gini``: the Gini coefficient of stall-days per active vendor, mean absolute difference /
  (2 × mean): 0 when everyone had as many, towards 1 when a few had them all; none without
  active vendors or stall-days;
- ``priority_stall_day_share``: stall-days of priority-group bookings / stall-days;
- ``vendors_served``: active vendors with at least one stall-day;
- ``applicants``, ``applicants_won``, ``applicant_win_share``: of the distinct applicants of the
  week's draws, those among any of the draws' winners; none without draws.

Unlike :class:`reporting.domain.figures.Figures` these do not add up: a Gini coefficient is of
the vendors together, so a scope's tally keeps stall-days per vendor and scopes merge tallies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from reporting.domain.figures import MarketDayFacts


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


def gini(values: Sequence[int]) -> float | None:
    """The Gini coefficient of ``values`` (rounded to 4 places); none when empty or all zero.

    Mean absolute difference over every ordered pair / (2 × mean), computed from the sorted
    values: (2 Σ i·x₍ᵢ₎ − (n + 1) Σ x) / (n Σ x), i from 1, in integers until the one division.
    """
    n, whole = len(values), sum(values)
    if n == 0 or whole == 0:
        return None
    weighted = sum(i * x for i, x in enumerate(sorted(values), start=1))
    return round((2 * weighted - (n + 1) * whole) / (n * whole), 4)


@dataclass
class FairnessTally:
    """What a scope's fairness figures are computed from."""

    #: Active vendor → stall-days (0 for those who booked or applied and got none).
    stall_days_by_vendor: dict[str, int] = field(default_factory=dict)
    stall_days: int = 0
    priority_stall_days: int = 0
    applicants: set[str] = field(default_factory=set)
    winners: set[str] = field(default_factory=set)
    draws: int = 0

    def add_day(self, facts: MarketDayFacts) -> None:
        """Take in one market-day's bookings and draws."""
        per_vendor = self.stall_days_by_vendor
        for booking in facts.bookings.values():
            if not booking.created:  # its creation has not come yet
                continue
            stands = booking.stands
            self.stall_days += stands
            self.priority_stall_days += stands and booking.priority
            if booking.vendor_id:  # recorded by an earlier version: no vendor to count it for
                per_vendor[booking.vendor_id] = per_vendor.get(booking.vendor_id, 0) + stands
        for draw in facts.draws.values():
            # Allocation completes a draw for every window booked after its draw time, also
            # when nobody applied: only those with applicants were draws in any real sense.
            self.draws += bool(draw.applicants)
            self.applicants |= draw.applicants
            self.winners |= draw.winners
            for vendor_id in draw.applicants:
                per_vendor.setdefault(vendor_id, 0)

    def merge(self, other: FairnessTally) -> None:
        """Take in another scope's tally (its vendors are the same people as ours)."""
        for vendor_id, days in other.stall_days_by_vendor.items():
            self.stall_days_by_vendor[vendor_id] = (
                self.stall_days_by_vendor.get(vendor_id, 0) + days
            )
        self.stall_days += other.stall_days
        self.priority_stall_days += other.priority_stall_days
        self.applicants |= other.applicants
        self.winners |= other.winners
        self.draws += other.draws

    def as_json(self) -> dict[str, Any]:
        """The figures (shares as fractions, None when undefined)."""
        per_vendor = self.stall_days_by_vendor
        applicants_won = len(self.applicants & self.winners)
        return {
            "gini": gini(list(per_vendor.values())),
            "stall_days": self.stall_days,
            "priority_stall_days": self.priority_stall_days,
            "priority_stall_day_share": _rate(self.priority_stall_days, self.stall_days),
            "active_vendors": len(per_vendor),
            "vendors_served": sum(1 for days in per_vendor.values() if days > 0),
            "draws": self.draws,
            "applicants": len(self.applicants),
            "applicants_won": applicants_won,
            "applicant_win_share": None
            if not self.draws
            else _rate(applicants_won, len(self.applicants)),
        }


def tally(days: Iterable[MarketDayFacts]) -> FairnessTally:
    """The tally of some market-days."""
    out = FairnessTally()
    for facts in days:
        out.add_day(facts)
    return out


def merged(tallies: Iterable[FairnessTally]) -> FairnessTally:
    """The tally of several scopes together."""
    out = FairnessTally()
    for t in tallies:
        out.merge(t)
    return out


def week_dates(monday: date) -> list[date]:
    """Monday to Sunday of the ISO week starting on ``monday``."""
    return [monday + timedelta(days=n) for n in range(7)]


def week_label(monday: date) -> str:
    """``2026-W49``: the ISO week of ``monday``."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> date:
    """The Monday of an ISO week written ``YYYY-Www``; ValueError if there is no such week."""
    year, sep, week = text.partition("-W")
    if not (sep and len(year) == 4 and year.isdigit() and len(week) == 2 and week.isdigit()):
        raise ValueError("an ISO week is written YYYY-Www, e.g. 2026-W49")
    try:
        monday = date.fromisocalendar(int(year), int(week), 1)
        date.fromisocalendar(int(year), int(week), 7)  # its Sunday exists too
    except (ValueError, OverflowError):
        raise ValueError(f"{year} has no ISO week {week}") from None
    return monday
