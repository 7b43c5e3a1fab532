"""``/v1/reports``: the figures and the fairness figures as JSON, CSV or XLSX, and the markets'
live occupancy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema

from contracts.catalogue import MARKET_ID_PATTERN, District
from contracts.text import IsoDate
from reporting.domain.fairness import parse_week, week_label
from reporting.entrypoints.report_formats import (
    CSV_TYPE,
    XLSX_TYPE,
    fairness_csv,
    fairness_xlsx,
    to_csv,
    to_xlsx,
)
from reporting.service_layer.reports import FairnessReport, Report, Reports
from stallkit.auth import Principal, Role, require_role
from stallkit.openapi import problems

Format = Literal["json", "csv", "xlsx"]


class FiguresOut(BaseModel):
    """The figures of one scope (see the README for each definition)."""

    bookable_stall_windows: int
    bookings: int
    priority_bookings: int
    priority_share: float | None
    check_ins: int
    no_shows: int
    cancellations: int
    late_cancellations: int
    standing_bookings: int
    booked_rate: float | None
    occupancy_rate: float | None
    scans: int
    scans_by_outcome: dict[str, int]
    compliant_share: float | None
    warnings: int
    violations_by_type: dict[str, int]
    cases_opened: int
    cases_closed: int
    disposals_due: int
    disposed_on_time: int
    on_time_disposal_rate: float | None
    mean_disposal_hours: float | None
    cohort_closed: int
    closure_rate: float | None
    evaluations: int
    satisfied: int
    satisfaction: float | None
    occupancy_by_hour: list[int] = Field(description="Stalls in use in each local hour, 0-23.")


class ScopeOut(BaseModel):
    """What the report is about."""

    kind: Literal["city", "district", "market"]
    id: str | None
    name_zh: str
    name_en: str


class MarketFiguresOut(BaseModel):
    """One market's figures over the report's dates."""

    market_id: str
    name_zh: str
    name_en: str
    district: str
    figures: FiguresOut


class DayFiguresOut(BaseModel):
    """The scope's figures on one day."""

    date: date
    figures: FiguresOut


class ReportOut(BaseModel):
    """A report: the scope's figures in all, per market and per day."""

    scope: ScopeOut
    from_: date = Field(alias="from")
    to: date
    generated_at: str
    total: FiguresOut
    markets: list[MarketFiguresOut]
    days: list[DayFiguresOut]


class FairnessFiguresOut(BaseModel):
    """The fairness figures of one scope over an ISO week (see the README for each definition)."""

    gini: float | None = Field(
        description="Gini coefficient of stall-days per active vendor (0: even; null: none)."
    )
    stall_days: int = Field(description="Bookings that stood (a no-show counts).")
    priority_stall_days: int
    priority_stall_day_share: float | None
    active_vendors: int = Field(description="Vendors who booked or applied in a draw.")
    vendors_served: int = Field(description="Active vendors with at least one stall-day.")
    draws: int
    applicants: int = Field(description="Distinct applicants of the week's draws.")
    applicants_won: int = Field(description="Of them, those among the draws' winners.")
    applicant_win_share: float | None


class MarketFairnessOut(BaseModel):
    """One market's fairness figures over the week."""

    market_id: str
    name_zh: str
    name_en: str
    district: str
    figures: FairnessFiguresOut


class FairnessOut(BaseModel):
    """The fairness figures of the scope over an ISO week, in all and per market."""

    scope: ScopeOut
    week: str = Field(examples=["2026-W49"])
    from_: date = Field(alias="from", description="The week's Monday.")
    to: date = Field(description="The week's Sunday.")
    generated_at: str
    total: FairnessFiguresOut
    markets: list[MarketFairnessOut]


class LiveWindowOut(BaseModel):
    """The window running now."""

    window_id: str
    starts_at: str
    ends_at: str


class LiveMarketOut(BaseModel):
    """A market now: its running window, stalls, standing bookings and check-ins in it."""

    market_id: str
    name_zh: str
    name_en: str
    district: str
    window: LiveWindowOut | None
    stalls: int
    booked: int
    checked_in: int


class LiveOut(BaseModel):
    """The markets with live occupancy."""

    at: str
    markets: list[LiveMarketOut]


_FORMATS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: JSON, or CSV / XLSX by `Accept` or `format`.",
        "content": {
            CSV_TYPE: {"schema": {"type": "string"}},
            XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _format(request: Request, asked: Format | None) -> Format:
    if asked is not None:
        return asked
    accept = request.headers.get("accept", "")
    if XLSX_TYPE in accept:
        return "xlsx"
    if CSV_TYPE in accept:
        return "csv"
    return "json"


R = TypeVar("R", Report, FairnessReport)
M = TypeVar("M", bound=BaseModel)


def _answer(
    report: R,
    fmt: Format,
    name: str,
    *,
    model: type[M],
    csv: Callable[[R], bytes],
    xlsx: Callable[[R], bytes],
) -> Response | M:
    if fmt == "csv":
        return Response(
            csv(report),
            media_type=f"{CSV_TYPE}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "xlsx":
        return Response(
            xlsx(report),
            media_type=XLSX_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return model.model_validate(report.as_json())


def _report_answer(report: Report, fmt: Format, name: str) -> Response | ReportOut:
    return _answer(report, fmt, name, model=ReportOut, csv=to_csv, xlsx=to_xlsx)


def _iso_week(value: Any) -> Any:
    return parse_week(value) if isinstance(value, str) else value


#: An ISO week written ``2026-W49``, as the date of its Monday.
IsoWeek = Annotated[
    date,
    BeforeValidator(_iso_week),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{4}-W[0-9]{2}$",
            "description": "ISO week, YYYY-Www (Monday to Sunday).",
            "examples": ["2026-W49"],
        }
    ),
]


StaffDep = Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)]
DistrictQuery = Annotated[
    District | None,
    Query(description="The district (district staff: their own, the default); none: the city."),
]
FormatQuery = Annotated[
    Format | None, Query(description="json, csv or xlsx; instead of an Accept header.")
]


def reports_router(reports: Reports) -> APIRouter:
    """Routes of the reports, answered by ``reports``."""
    router = APIRouter(prefix="/v1/reports", tags=["reports"])

    @router.get(
        "/daily",
        response_model=ReportOut,
        responses={**_FORMATS_DOC, **problems(404, 422)},
    )
    async def daily_report(
        request: Request,
        caller: StaffDep,
        district: DistrictQuery = None,
        on: Annotated[IsoDate | None, Query(alias="date", description="Default: today.")] = None,
        format: FormatQuery = None,
    ) -> Response | ReportOut:
        """One day's figures of a district (or the city), per market and in all."""
        day = on or reports.clock.today()
        report = await reports.report(
            caller,
            district=district.value if district else None,
            market_id=None,
            first=day,
            last=day,
        )
        name = f"report-{report.scope.id or 'zhuhai'}-{day.isoformat()}"
        return _report_answer(report, _format(request, format), name)

    @router.get(
        "",
        response_model=ReportOut,
        responses={**_FORMATS_DOC, **problems(404, 422)},
    )
    async def range_report(
        request: Request,
        caller: StaffDep,
        first: Annotated[IsoDate, Query(alias="from", description="First local date.")],
        last: Annotated[IsoDate, Query(alias="to", description="Last local date (inclusive).")],
        district: DistrictQuery = None,
        market: Annotated[
            str | None, Query(pattern=MARKET_ID_PATTERN, description="Only this market.")
        ] = None,
        format: FormatQuery = None,
    ) -> Response | ReportOut:
        """The figures of a district, a market or the city over a date range (at most a year)."""
        report = await reports.report(
            caller,
            district=district.value if district else None,
            market_id=market,
            first=first,
            last=last,
        )
        name = f"report-{report.scope.id or 'zhuhai'}-{first.isoformat()}-{last.isoformat()}"
        return _report_answer(report, _format(request, format), name)

    @router.get(
        "/fairness",
        response_model=FairnessOut,
        responses={**_FORMATS_DOC, **problems(422)},
    )
    async def fairness_report(
        request: Request,
        caller: StaffDep,
        district: DistrictQuery = None,
        week: Annotated[
            IsoWeek | None, Query(description="ISO week, e.g. 2026-W49. Default: this week.")
        ] = None,
        format: FormatQuery = None,
    ) -> Response | FairnessOut:
        """How evenly a district's (or the city's) stalls went round in an ISO week: the Gini
        coefficient of stall-days per active vendor, the priority groups' share of stall-days and
        the draws' win share, in all and per market."""
        if week is None:
            today = reports.clock.today()
            week = today - timedelta(days=today.weekday())
        report = await reports.fairness(
            caller, district=district.value if district else None, monday=week
        )
        name = f"fairness-{report.scope.id or 'zhuhai'}-{week_label(week)}"
        return _answer(
            report,
            _format(request, format),
            name,
            model=FairnessOut,
            csv=fairness_csv,
            xlsx=fairness_xlsx,
        )

    @router.get("/live", response_model=LiveOut)
    async def live_occupancy(caller: StaffDep, district: DistrictQuery = None) -> LiveOut:
        """The markets with the window running now, their stalls, bookings and check-ins."""
        return LiveOut.model_validate(
            await reports.live(caller, district.value if district else None)
        )

    return router
