"""``/v1/reports``: the figures as JSON, CSV or XLSX, and the markets' live occupancy."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from contracts.catalogue import MARKET_ID_PATTERN, District
from contracts.text import IsoDate
from reporting.entrypoints.report_formats import CSV_TYPE, XLSX_TYPE, to_csv, to_xlsx
from reporting.service_layer.reports import Report, Reports
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


def _answer(report: Report, fmt: Format, name: str) -> Response | ReportOut:
    if fmt == "csv":
        return Response(
            to_csv(report),
            media_type=f"{CSV_TYPE}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "xlsx":
        return Response(
            to_xlsx(report),
            media_type=XLSX_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return ReportOut.model_validate(report.as_json())


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
        return _answer(report, _format(request, format), name)

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
        return _answer(report, _format(request, format), name)

    @router.get("/live", response_model=LiveOut)
    async def live_occupancy(caller: StaffDep, district: DistrictQuery = None) -> LiveOut:
        """The markets with the window running now, their stalls, bookings and check-ins."""
        return LiveOut.model_validate(
            await reports.live(caller, district.value if district else None)
        )

    return router
