"""``stallctl demo``: the driver's own tally, its comparison with reporting's figures, and the
printed report and progress line (pure: no I/O)."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.catalogue import DISTRICT_NAMES, District

#: The counts of reporting's daily figures the driver's tally must equal, district by district.
COMPARED = (
    "bookings",
    "priority_bookings",
    "check_ins",
    "no_shows",
    "cancellations",
    "late_cancellations",
    "scans",
    "scans_by_outcome",
    "warnings",
    "cases_opened",
    "cases_closed",
    "disposals_due",
    "disposed_on_time",
    "cohort_closed",
    "evaluations",
    "satisfied",
)


@dataclass
class CaseTally:
    """What the driver did to one case, and when."""

    opened_at: datetime
    deadline: datetime
    #: Each handling: (when, within the deadline).
    handled: list[tuple[datetime, bool]] = field(default_factory=list)
    sent_back: list[datetime] = field(default_factory=list)
    closed_at: datetime | None = None
    score: int | None = None
    steps: list[str] = field(default_factory=list)

    def handling(self) -> tuple[datetime, bool] | None:
        """The handling that stands: the last, unless it was sent back since."""
        if not self.handled:
            return None
        last = max(self.handled)
        if self.sent_back and max(self.sent_back) > last[0]:
            return None
        return last


@dataclass
class DistrictTally:
    """Everything the driver saw the services accept in one district on the day."""

    bookings: dict[str, bool] = field(default_factory=dict)  # booking id → priority
    checked_in: set[str] = field(default_factory=set)
    cancelled: dict[str, bool] = field(default_factory=dict)  # booking id → late
    scans: dict[str, str] = field(default_factory=dict)  # scan id → outcome
    warnings: set[str] = field(default_factory=set)
    cases: dict[str, CaseTally] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)  # booking refusals by code

    def no_shows(self) -> set[str]:
        """Bookings neither checked in nor cancelled: the windows' deadlines made no-shows."""
        return set(self.bookings) - self.checked_in - set(self.cancelled)

    def figures(self, at: datetime) -> dict[str, Any]:
        """The counts reporting should show, as they stand at ``at`` (overdue cases count as
        due for disposal once their deadline has passed)."""
        handled = [c.handling() for c in self.cases.values()]
        overdue = [
            c
            for c, h in zip(self.cases.values(), handled, strict=True)
            if h is None and c.deadline < at
        ]
        return {
            "bookings": len(self.bookings),
            "priority_bookings": sum(self.bookings.values()),
            "check_ins": len(self.checked_in),
            "no_shows": len(self.no_shows()),
            "cancellations": len(self.cancelled),
            "late_cancellations": sum(self.cancelled.values()),
            "scans": len(self.scans),
            "scans_by_outcome": dict(sorted(Counter(self.scans.values()).items())),
            "warnings": len(self.warnings),
            "cases_opened": len(self.cases),
            "cases_closed": sum(c.closed_at is not None for c in self.cases.values()),
            "disposals_due": sum(h is not None for h in handled) + len(overdue),
            "disposed_on_time": sum(h is not None and h[1] for h in handled),
            "cohort_closed": sum(c.closed_at is not None for c in self.cases.values()),
            "evaluations": sum(c.score is not None for c in self.cases.values()),
            "satisfied": sum(c.score is not None and c.score >= 4 for c in self.cases.values()),
        }


def differences(expected: Mapping[str, Any], reported: Mapping[str, Any]) -> list[str]:
    """The compared figures that differ: ``name: tally X, report Y``."""
    return [
        f"{name}: tally {expected.get(name)}, report {reported.get(name)}"
        for name in COMPARED
        if expected.get(name) != reported.get(name)
    ]


# -- text layout ----------------------------------------------------------------------------------


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clip(text: str, columns: int) -> str:
    """``text`` cut to fit ``columns`` terminal columns."""
    out, used = [], 0
    for ch in text:
        used += width(ch)
        if used > columns:
            break
        out.append(ch)
    return "".join(out)


def pad(text: str, columns: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``columns`` (aligned right for numbers)."""
    gap = " " * max(0, columns - width(text))
    return gap + text if right else text + gap


def percent(rate: float | None) -> str:
    """A fraction as ``95.9%``; ``—`` for no rate."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``, None when there is nothing to divide by."""
    return None if denominator == 0 else numerator / denominator


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    columns = [max(width(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for n, row in enumerate([headers, *rows]):
        cells = [pad(str(cell), columns[i], right=i > 0) for i, cell in enumerate(row)]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("─" * c for c in columns))
    return "\n".join(lines)


def district_label(district: str) -> str:
    """``香洲区 xiangzhou``; ``全市 city`` for the whole city."""
    if district == "city":
        return "全市 city"
    try:
        zh = DISTRICT_NAMES[District(district)][0]
    except ValueError:
        return district
    return f"{zh.removesuffix('粤澳深度合作区')} {district}"


@dataclass(frozen=True)
class DistrictReport:
    """One row of the printed report: reporting's figures and fairness of a district (or the
    city), and whether they agree with the driver's tally."""

    district: str
    markets: int
    figures: Mapping[str, Any]
    fairness: Mapping[str, Any] | None
    mismatches: Sequence[str] = ()


def format_report(day: str, rows: Sequence[DistrictReport], extras: Sequence[str] = ()) -> str:
    """The end-of-day report: bookings and occupancy, patrols and cases, fairness, then whether
    reporting's figures agree with what the driver did."""
    bookings = [
        [
            district_label(r.district),
            str(r.markets),
            str(r.figures["bookable_stall_windows"]),
            str(r.figures["bookings"]),
            percent(r.figures["priority_share"]),
            str(r.figures["check_ins"]),
            percent(r.figures["occupancy_rate"]),
            str(r.figures["no_shows"]),
            f"{r.figures['cancellations']} ({r.figures['late_cancellations']})",
        ]
        for r in rows
    ]
    patrols = [
        [
            district_label(r.district),
            str(r.figures["scans"]),
            percent(r.figures["compliant_share"]),
            str(r.figures["warnings"]),
            str(r.figures["cases_opened"]),
            str(r.figures["cases_closed"]),
            percent(r.figures["on_time_disposal_rate"]),
            percent(r.figures["closure_rate"]),
            percent(r.figures["satisfaction"]),
        ]
        for r in rows
    ]
    fairness = [
        [
            district_label(r.district),
            str(r.fairness["active_vendors"]),
            str(r.fairness["vendors_served"]),
            str(r.fairness["stall_days"]),
            percent(r.fairness["priority_stall_day_share"]),
            "—" if r.fairness["gini"] is None else f"{r.fairness['gini']:.3f}",
        ]
        for r in rows
        if r.fairness is not None
    ]
    out = [
        f"日报 Daily report {day} (from reporting's /v1/reports/daily and /v1/reports/fairness)",
        "",
        "预约与使用 Bookings and occupancy",
        table(
            [
                "district",
                "markets",
                "stall-windows",
                "bookings",
                "priority",
                "check-ins",
                "occupancy",
                "no-shows",
                "cancelled (late)",
            ],
            bookings,
        ),
        "",
        "巡查与案件 Patrols and cases",
        table(
            [
                "district",
                "scans",
                "compliant",
                "warnings",
                "cases",
                "closed",
                "on-time disposal",
                "closure",
                "satisfaction",
            ],
            patrols,
        ),
    ]
    if fairness:
        out += [
            "",
            "公平 Fairness (the ISO week; a stall-day is a booking that stood)",
            table(
                ["district", "active vendors", "served", "stall-days", "priority share", "gini"],
                fairness,
            ),
        ]
    out += ["", *extras]
    return "\n".join(out)


def agreement(rows: Sequence[DistrictReport]) -> tuple[bool, str]:
    """Whether every district's figures equal the tally, and the lines that say so."""
    checked = [r for r in rows if r.district != "city"]
    bad = [r for r in checked if r.mismatches]
    if not bad:
        return True, (
            f"✓ 报表与演示记录一致 reporting agrees with the driver's own tally: "
            f"{len(checked)} districts × {len(COMPARED)} figures"
        )
    lines = ["✗ 报表与演示记录不一致 reporting disagrees with the driver's tally:"]
    for r in bad:
        lines += [f"  {district_label(r.district)}: {m}" for m in r.mismatches]
    return False, "\n".join(lines)


def spread(per_vendor: Mapping[str, int], vendors: int) -> str:
    """``stall-days per vendor: 0 → 312, 1 → 1,488, 2 → 200`` over all ``vendors``."""
    counts = Counter(per_vendor.values())
    counts[0] += vendors - len(per_vendor)
    parts = [f"{n} → {counts[n]:,}" for n in sorted(counts)]
    return "每位摊贩的摊位天数 stall-days per vendor: " + ", ".join(parts)


def group_shares(bookings: Mapping[str, int], vendors: Mapping[str, int]) -> str:
    """Each priority group's share of the bookings beside its share of the vendors."""
    total_b, total_v = sum(bookings.values()), sum(vendors.values())
    parts = [
        f"{group} {percent(ratio(bookings.get(group, 0), total_b))} "
        f"(of vendors {percent(ratio(count, total_v))})"
        for group, count in sorted(vendors.items(), key=lambda kv: -kv[1])
    ]
    return "按群体的预约份额 share of bookings by group: " + ", ".join(parts)


def progress_line(
    fraction: float, now: datetime, phase: str, counters: Mapping[str, int], bar: int = 24
) -> str:
    """``[#######.........] 41% 13:12 evening markets open · booked 1532 · ...``"""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * bar)
    parts = [f"[{'#' * filled}{'.' * (bar - filled)}] {fraction * 100:3.0f}% {now:%H:%M}", phase]
    parts += [f"{name} {value}" for name, value in counters.items()]
    return " · ".join(parts)
