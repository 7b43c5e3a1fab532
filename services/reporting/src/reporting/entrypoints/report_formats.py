"""A report as the table offices open: CSV (UTF-8 with a BOM, for Excel) or XLSX.

One row per market over the report's dates, then the total, then (for more than one day) one
row per day; bilingual column headers; rates as fractions (XLSX formats them as percentages).
The fairness report has the same shape: one row per market over the week, then the total.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from reporting.service_layer.reports import FairnessReport, Report

CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: (figure, header): the figures every row has, in order.
FIGURE_COLUMNS: list[tuple[str, str]] = [
    ("bookable_stall_windows", "可预约摊位时段 Bookable stall-windows"),
    ("bookings", "预约 Bookings"),
    ("priority_bookings", "优先群体预约 Priority bookings"),
    ("priority_share", "优先群体占比 Priority share"),
    ("check_ins", "签到 Check-ins"),
    ("no_shows", "爽约 No-shows"),
    ("cancellations", "取消 Cancellations"),
    ("late_cancellations", "逾期取消 Late cancellations"),
    ("booked_rate", "预约率 Booked rate"),
    ("occupancy_rate", "使用率 Occupancy rate"),
    ("scans", "巡查扫码 Scans"),
    ("compliant_share", "合规率 Compliant share"),
    ("warnings", "警告 Warnings"),
    ("cases_opened", "立案 Cases opened"),
    ("cases_closed", "结案 Cases closed"),
    ("on_time_disposal_rate", "按时处置率 On-time disposal rate"),
    ("mean_disposal_hours", "平均处置时长(小时) Mean disposal hours"),
    ("closure_rate", "结案率 Closure rate"),
    ("satisfaction", "满意率 Satisfaction"),
    ("evaluations", "评价数 Evaluations"),
]
RATES = {
    "priority_share",
    "booked_rate",
    "occupancy_rate",
    "compliant_share",
    "on_time_disposal_rate",
    "closure_rate",
    "satisfaction",
}
LEAD_COLUMNS = [
    "行 Row",
    "日期 Date",
    "市场编号 Market",
    "名称 Name",
    "Name (en)",
    "区 District",
]


def rows(report: Report) -> list[list[Any]]:
    """The report's table: the header, then its rows."""
    span = report.first.isoformat()
    if report.last != report.first:
        span = f"{span}~{report.last.isoformat()}"
    table: list[list[Any]] = [LEAD_COLUMNS + [header for _, header in FIGURE_COLUMNS]]

    def row(kind: str, when: str, ident: str, zh: str, en: str, district: str, f: Any) -> None:
        figures = f.as_json()
        table.append(
            [kind, when, ident, zh, en, district] + [figures[k] for k, _ in FIGURE_COLUMNS]
        )

    for market, figures in report.markets:
        row(
            "market",
            span,
            market.market_id,
            market.name_zh,
            market.name_en,
            market.district,
            figures,
        )
    scope = report.scope
    row(
        "total",
        span,
        scope.id or "",
        scope.name_zh,
        scope.name_en,
        scope.district or "",
        report.total,
    )
    if len(report.days) > 1:
        for day, figures in report.days:
            ident, district = scope.id or "", scope.district or ""
            row("day", day.isoformat(), ident, scope.name_zh, scope.name_en, district, figures)
    return table


def table_csv(table: list[list[Any]]) -> bytes:
    """A table as CSV, UTF-8 with a byte-order mark (Excel then reads Chinese right)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for line in table:
        writer.writerow(["" if v is None else v for v in line])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def table_xlsx(table: list[list[Any]], title: str, formats: dict[str, str]) -> bytes:
    """A table as an Excel workbook: one sheet, bold header, ``formats``: number format by
    column header (rates as percentages)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for line in table:
        sheet.append(line)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for index, header in enumerate(table[0], start=1):
        if header in formats:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = formats[header]
    sheet.freeze_panes = "C2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_csv(report: Report) -> bytes:
    """The report's table as CSV."""
    return table_csv(rows(report))


def to_xlsx(report: Report) -> bytes:
    """The report's table as an Excel workbook."""
    formats = {header: "0.00%" for key, header in FIGURE_COLUMNS if key in RATES}
    return table_xlsx(rows(report), "报表 Report", formats)


#: (figure, header): the fairness figures every row has, in order.
FAIRNESS_COLUMNS: list[tuple[str, str]] = [
    ("gini", "基尼系数(摊位日) Gini of stall-days"),
    ("stall_days", "摊位日 Stall-days"),
    ("priority_stall_days", "优先群体摊位日 Priority stall-days"),
    ("priority_stall_day_share", "优先群体摊位日占比 Priority stall-day share"),
    ("active_vendors", "活跃摊主 Active vendors"),
    ("vendors_served", "获得摊位的摊主 Vendors served"),
    ("draws", "抽签 Draws"),
    ("applicants", "抽签申请人 Applicants"),
    ("applicants_won", "中签申请人 Applicants won"),
    ("applicant_win_share", "申请人中签率 Applicant win share"),
]
FAIRNESS_LEAD_COLUMNS = [
    "行 Row",
    "周 Week",
    "市场编号 Market",
    "名称 Name",
    "Name (en)",
    "区 District",
]


def fairness_rows(report: FairnessReport) -> list[list[Any]]:
    """The fairness report's table: the header, one row per market, then the total."""
    table: list[list[Any]] = [FAIRNESS_LEAD_COLUMNS + [header for _, header in FAIRNESS_COLUMNS]]
    week, scope = report.week, report.scope
    lines = [
        ("market", m.market_id, m.name_zh, m.name_en, m.district, t) for m, t in report.markets
    ]
    lines.append(
        ("total", scope.id or "", scope.name_zh, scope.name_en, scope.district or "", report.total)
    )
    for kind, ident, zh, en, district, t in lines:
        figures = t.as_json()
        table.append(
            [kind, week, ident, zh, en, district] + [figures[k] for k, _ in FAIRNESS_COLUMNS]
        )
    return table


def fairness_csv(report: FairnessReport) -> bytes:
    """The fairness report's table as CSV."""
    return table_csv(fairness_rows(report))


def fairness_xlsx(report: FairnessReport) -> bytes:
    """The fairness report's table as an Excel workbook (Gini to 3 places, shares in %)."""
    formats = {
        header: "0.000" if key == "gini" else "0.00%"
        for key, header in FAIRNESS_COLUMNS
        if key == "gini" or key.endswith("_share")
    }
    return table_xlsx(fairness_rows(report), "公平性 Fairness", formats)
