"""The figures the scheme is judged by, computed from what happened (facts), never counted up.

Each fact is keyed by what it is about (a booking, a scan, a case) and set, not added: seeing an
event twice, replaying a topic or getting a cancellation before its booking leaves the same facts,
so the figures are the same. They are computed when asked for, from the facts of the market-days
asked about.

Definitions (per market and local day; a district, the city or a date range adds them up):

- bookable stall-windows: active stalls × the market's windows that day, less withdrawn
  windows; none on a suspended day;
- bookings: created bookings of the day's windows (also those later cancelled); priority share of
  them; check-ins, no-shows, cancellations (late ones too);
- booked rate: bookings still standing (not cancelled, not ended by a suspension) / bookable;
  occupancy rate: check-ins / bookable; stalls in use per hour: checked-in bookings whose window
  covers that hour;
- scans by outcome (by the local day they were observed), compliant share; warnings and
  violations by type (warnings and cases, by the day they were issued);
- cases opened and closed that day; for the cases opened that day (a cohort), as they stand now:
  on-time disposal rate (handled within the deadline / handled or overdue), mean disposal time
  (opened → handled), closure rate (closed / opened), satisfaction (evaluations scoring 4 or 5 /
  evaluations).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from stallkit.clock import MARKET_TZ

#: Evaluations scoring at least this (of 5) count as satisfied.
SATISFIED_SCORE = 4
COMPLIANT = "compliant"


@dataclass(frozen=True)
class WindowFacts:
    """One weekly window of a market's schedule."""

    window_id: str
    days: frozenset[int]  # ISO weekdays
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class MarketFacts:
    """What reports need to know about a market."""

    market_id: str
    district: str
    name_zh: str
    name_en: str
    windows: tuple[WindowFacts, ...]
    active_stalls: int
    #: Suspended date ranges (inclusive), lifted parts already taken off.
    suspended: tuple[tuple[date, date], ...] = ()

    def is_suspended(self, day: date) -> bool:
        """Whether the market is suspended on ``day``."""
        return any(first <= day <= last for first, last in self.suspended)

    def windows_on(self, day: date) -> list[WindowFacts]:
        """The windows the schedule has on ``day``."""
        return [w for w in self.windows if day.isoweekday() in w.days]


@dataclass
class BookingFacts:
    """What is known about one booking (any of it may be missing, in any order)."""

    created: bool = False
    #: Empty for a booking recorded by a version that did not keep the vendor.
    vendor_id: str = ""
    priority: bool = False
    window_id: str = ""
    starts_at: float = 0.0  # Unix seconds
    ends_at: float = 0.0
    cancelled: bool = False
    late: bool = False
    checked_in_at: float | None = None
    no_show: bool = False
    ended_by_suspension: bool = False

    @property
    def stands(self) -> bool:
        """Created and neither cancelled nor ended by a suspension (a no-show still stands)."""
        return self.created and not (self.cancelled or self.ended_by_suspension)


@dataclass(frozen=True)
class DrawFacts:
    """The outcome of one window's draw: who applied, who got a stall."""

    applicants: frozenset[str]
    winners: frozenset[str]
    stalls: int = 0


@dataclass(frozen=True)
class ScanFacts:
    """One scan's outcome and the violations recorded with it."""

    outcome: str
    violations: tuple[str, ...] = ()


@dataclass
class CaseFacts:
    """What is known about one case."""

    opened_at: float | None = None
    deadline: float | None = None
    violation: str = ""
    #: Each handling: (when, within the deadline).
    handled: list[tuple[float, bool]] = field(default_factory=list)
    sent_back: list[float] = field(default_factory=list)
    closed_at: float | None = None
    scores: list[int] = field(default_factory=list)

    def handling(self) -> tuple[float, bool] | None:
        """The handling that stands: the last one, unless verification sent it back since."""
        if not self.handled:
            return None
        last = max(self.handled)
        if self.sent_back and max(self.sent_back) > last[0]:
            return None
        return last


@dataclass
class MarketDayFacts:
    """Everything recorded about one market on one local day."""

    bookings: dict[str, BookingFacts] = field(default_factory=dict)
    scans: dict[str, ScanFacts] = field(default_factory=dict)
    #: Warning id → violation type.
    warnings: dict[str, str] = field(default_factory=dict)
    #: Cases opened this day: case id → violation type.
    cases_opened: dict[str, str] = field(default_factory=dict)
    cases_closed: set[str] = field(default_factory=set)
    withdrawn_windows: set[str] = field(default_factory=set)
    #: Window id → its draw, for the windows of the day that had one.
    draws: dict[str, DrawFacts] = field(default_factory=dict)


def _rate(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


@dataclass
class Figures:
    """The figures of one scope (market, district, city) over one day or several.

    Only counts are stored; every rate is computed from them, so adding two scopes' figures
    gives the figures of both together.
    """

    bookable_stall_windows: int = 0
    bookings: int = 0
    priority_bookings: int = 0
    standing_bookings: int = 0
    check_ins: int = 0
    no_shows: int = 0
    cancellations: int = 0
    late_cancellations: int = 0
    scans: int = 0
    compliant_scans: int = 0
    warnings: int = 0
    cases_opened: int = 0
    cases_closed: int = 0
    #: Of the cases opened in the scope: handled or overdue, handled on time, handled, the
    #: hours from opening to handling summed, closed, evaluated, evaluated 4 or 5.
    disposals_due: int = 0
    disposed_on_time: int = 0
    disposed: int = 0
    disposal_hours_total: float = 0.0
    cohort_closed: int = 0
    evaluations: int = 0
    satisfied: int = 0
    scans_by_outcome: Counter[str] = field(default_factory=Counter)
    violations_by_type: Counter[str] = field(default_factory=Counter)
    occupancy_by_hour: list[int] = field(default_factory=lambda: [0] * 24)

    def __add__(self, other: Figures) -> Figures:
        out = Figures()
        for f in fields(Figures):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                value: Any = [a + b for a, b in zip(mine, theirs, strict=True)]
            elif isinstance(mine, Counter):
                value = mine + theirs
            else:
                value = mine + theirs
            setattr(out, f.name, value)
        return out

    @property
    def priority_share(self) -> float | None:
        """Priority-group bookings / bookings."""
        return _rate(self.priority_bookings, self.bookings)

    @property
    def booked_rate(self) -> float | None:
        """Standing bookings / bookable stall-windows."""
        return _rate(self.standing_bookings, self.bookable_stall_windows)

    @property
    def occupancy_rate(self) -> float | None:
        """Check-ins / bookable stall-windows: the stalls really in use."""
        return _rate(self.check_ins, self.bookable_stall_windows)

    @property
    def compliant_share(self) -> float | None:
        """Compliant scans / scans."""
        return _rate(self.compliant_scans, self.scans)

    @property
    def on_time_disposal_rate(self) -> float | None:
        """Cases handled within their deadline / cases handled or overdue (按时处置率)."""
        return _rate(self.disposed_on_time, self.disposals_due)

    @property
    def mean_disposal_hours(self) -> float | None:
        """Mean hours from opening to handling, of the cases handled."""
        return None if not self.disposed else round(self.disposal_hours_total / self.disposed, 2)

    @property
    def closure_rate(self) -> float | None:
        """Cases closed / cases opened (结案率)."""
        return _rate(self.cohort_closed, self.cases_opened)

    @property
    def satisfaction(self) -> float | None:
        """Evaluations of 4 or 5 / evaluations (满意率)."""
        return _rate(self.satisfied, self.evaluations)

    def as_json(self) -> dict[str, Any]:
        """The figures as reports show them (rates as fractions, None when undefined)."""
        return {
            "bookable_stall_windows": self.bookable_stall_windows,
            "bookings": self.bookings,
            "priority_bookings": self.priority_bookings,
            "priority_share": self.priority_share,
            "check_ins": self.check_ins,
            "no_shows": self.no_shows,
            "cancellations": self.cancellations,
            "late_cancellations": self.late_cancellations,
            "standing_bookings": self.standing_bookings,
            "booked_rate": self.booked_rate,
            "occupancy_rate": self.occupancy_rate,
            "scans": self.scans,
            "scans_by_outcome": dict(sorted(self.scans_by_outcome.items())),
            "compliant_share": self.compliant_share,
            "warnings": self.warnings,
            "violations_by_type": dict(sorted(self.violations_by_type.items())),
            "cases_opened": self.cases_opened,
            "cases_closed": self.cases_closed,
            "disposals_due": self.disposals_due,
            "disposed_on_time": self.disposed_on_time,
            "on_time_disposal_rate": self.on_time_disposal_rate,
            "mean_disposal_hours": self.mean_disposal_hours,
            "cohort_closed": self.cohort_closed,
            "closure_rate": self.closure_rate,
            "evaluations": self.evaluations,
            "satisfied": self.satisfied,
            "satisfaction": self.satisfaction,
            "occupancy_by_hour": list(self.occupancy_by_hour),
        }


def total(figures: Iterable[Figures]) -> Figures:
    """The figures of several scopes together."""
    out = Figures()
    for f in figures:
        out = out + f
    return out


def local_day(at: datetime) -> date:
    """The local (Asia/Shanghai) date of ``at``."""
    return at.astimezone(MARKET_TZ).date()


def _hours_in_use(booking: BookingFacts, day: date) -> list[int]:
    """The local hours of ``day`` in which a checked-in booking's stall is in use."""
    if booking.checked_in_at is None:
        return []
    midnight = datetime(day.year, day.month, day.day, tzinfo=MARKET_TZ).timestamp()
    since = max(booking.starts_at, booking.checked_in_at)
    hours = []
    for hour in range(24):
        begins = midnight + hour * 3600
        if since < begins + 3600 and booking.ends_at > begins:
            hours.append(hour)
    return hours


def market_day_figures(
    market: MarketFacts,
    day: date,
    facts: MarketDayFacts,
    cases: Mapping[str, CaseFacts],
    now: datetime,
) -> Figures:
    """The figures of one market on one local day, as the facts stand at ``now``."""
    out = Figures()
    if not market.is_suspended(day):
        windows = [w for w in market.windows_on(day) if w.window_id not in facts.withdrawn_windows]
        out.bookable_stall_windows = market.active_stalls * len(windows)
    for booking in facts.bookings.values():
        if not booking.created:  # its creation has not come yet: nothing to count
            continue
        out.bookings += 1
        out.priority_bookings += booking.priority
        out.cancellations += booking.cancelled
        out.late_cancellations += booking.cancelled and booking.late
        out.no_shows += booking.no_show
        out.standing_bookings += booking.stands
        if booking.checked_in_at is not None:
            out.check_ins += 1
            for hour in _hours_in_use(booking, day):
                out.occupancy_by_hour[hour] += 1
    for scan in facts.scans.values():
        out.scans += 1
        out.compliant_scans += scan.outcome == COMPLIANT
        out.scans_by_outcome[scan.outcome] += 1
    out.warnings = len(facts.warnings)
    out.violations_by_type.update(facts.warnings.values())
    out.violations_by_type.update(facts.cases_opened.values())
    out.cases_opened = len(facts.cases_opened)
    out.cases_closed = len(facts.cases_closed)
    moment = now.timestamp()
    for case_id in facts.cases_opened:
        case = cases.get(case_id, CaseFacts())
        handling = case.handling()
        if handling is not None:
            out.disposals_due += 1
            out.disposed += 1
            out.disposed_on_time += handling[1]
            if case.opened_at is not None:
                out.disposal_hours_total += max(0.0, handling[0] - case.opened_at) / 3600
        elif case.deadline is not None and case.deadline < moment:
            out.disposals_due += 1  # overdue, not handled
        out.cohort_closed += case.closed_at is not None
        if case.scores:
            out.evaluations += 1
            out.satisfied += case.scores[-1] >= SATISFIED_SCORE
    return out


def dates_between(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
