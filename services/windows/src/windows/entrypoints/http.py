"""HTTP routes of the windows service."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from contracts.catalogue import MARKET_ID_PATTERN, District, LocalTime
from contracts.text import PlainText
from stallkit.auth import Principal, Role, require_role
from stallkit.openapi import problems
from stallkit.problems import ProblemError, register_messages
from windows.adapters.schedule_store import ScheduleStore
from windows.domain.schedule import MarketSchedule
from windows.domain.timeline import local_today
from windows.service_layer.timeline import ClosureResult, InstanceState, Timeline

register_messages({"market_not_found": ("找不到该市场", "Market not found")})

MarketIdPath = Annotated[str, Path(pattern=MARKET_ID_PATTERN, examples=["XZ-03"])]


class WindowOut(BaseModel):
    """One recurring window of a market (local Asia/Shanghai times)."""

    id: str = Field(examples=["evening"])
    name_zh: str = Field(examples=["夜市"])
    name_en: str = Field(examples=["Evening market"])
    days: list[int] = Field(description="ISO weekdays (1 = Monday).", examples=[[1, 2, 3]])
    start: LocalTime = Field(description="Local start time.", examples=["17:30:00"])
    end: LocalTime = Field(description="Local end time, same day.", examples=["22:30:00"])


class ScheduleOut(BaseModel):
    """A market's weekly schedule as the windows service last saw it."""

    market_id: str = Field(examples=["XZ-03"])
    district: str | None = Field(description="District, when known.", examples=["xiangzhou"])
    windows: list[WindowOut]
    as_of: datetime = Field(description="Time of the catalogue change it reflects (UTC).")

    @classmethod
    def of(cls, schedule: MarketSchedule) -> ScheduleOut:
        """The response for a domain schedule."""
        return cls(
            market_id=schedule.market_id,
            district=schedule.district,
            as_of=schedule.as_of,
            windows=[
                WindowOut(
                    id=w.id,
                    name_zh=w.name_zh,
                    name_en=w.name_en,
                    days=list(w.days),
                    start=w.start,
                    end=w.end,
                )
                for w in schedule.windows
            ],
        )


def schedule_router(store: ScheduleStore) -> APIRouter:
    """Routes reading the schedule projection held in ``store``."""
    router = APIRouter(prefix="/v1", tags=["schedules"])

    @router.get(
        "/markets/{market_id}/schedule",
        response_model=ScheduleOut,
        responses={404: {"description": "Unknown market (code `market_not_found`)."}},
    )
    async def get_schedule(market_id: MarketIdPath) -> ScheduleOut:
        """The weekly schedule of a market, from the catalogue events seen so far."""
        schedule = await store.get(market_id)
        if schedule is None:
            raise ProblemError("market_not_found", 404)
        return ScheduleOut.of(schedule)

    return router


# --- the timeline --------------------------------------------------------------------------

register_messages(
    {
        "closure_not_found": ("找不到该临时关闭记录", "Closure not found"),
        "range_too_long": ("时间范围过长", "The time range is too long"),
        "date_out_of_range": ("日期超出可查询范围", "The date is outside the range served"),
    }
)

StaffCaller = Annotated[Principal, require_role(Role.PATROL, Role.DISTRICT, Role.ADMIN)]
CloserCaller = Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)]
MAX_RANGE = timedelta(days=8)
#: How far from today a timeline is served (published times are kept 9 days).
TIMELINE_REACH = timedelta(days=60)


def _scope(caller: Principal, district: District | None) -> District | None:
    """The district a caller may read: district staff their own only."""
    if caller.role is Role.DISTRICT:
        own = District(caller.district) if caller.district else None
        if own is None or (district is not None and district != own):
            raise ProblemError("other_district", 403)
        return own
    return district


class BoundaryOut(BaseModel):
    """One boundary of a window instance."""

    kind: str = Field(examples=["opened"])
    due: datetime = Field(description="When it is due (UTC).")
    published_at: datetime | None = Field(description="When it was published, if it was.")


class InstanceOut(BaseModel):
    """One window instance: its state and its boundaries."""

    market_id: str = Field(examples=["XZ-03"])
    district: District
    window_id: str = Field(examples=["evening"])
    date: dt.date
    starts_at: datetime
    ends_at: datetime
    state: str = Field(
        description="scheduled, open, closed, suspended or cancelled.", examples=["open"]
    )
    reason: str | None = Field(default=None, description="Why it is suspended, if it is.")
    boundaries: list[BoundaryOut]

    @classmethod
    def of(cls, i: InstanceState) -> InstanceOut:
        """The response for one instance."""
        return cls(
            market_id=i.market_id,
            district=i.district,
            window_id=i.window_id,
            date=i.date,
            starts_at=i.starts_at,
            ends_at=i.ends_at,
            state=i.state,
            reason=i.reason,
            boundaries=[BoundaryOut(kind=b.kind.value, due=b.due, published_at=b.published_at)
                        for b in i.boundaries],
        )  # fmt: skip


class DueOut(BaseModel):
    """A pending timer: what the market will announce, and when."""

    id: str = Field(description="The event id it will be published with.")
    market_id: str = Field(examples=["XZ-03"])
    kind: str = Field(examples=["closing_soon"])
    type: str = Field(examples=["cn.gov.zhuhai.markets.window.closing_soon.v1"])
    due: datetime
    date: dt.date | None = None
    window_id: str | None = None


class ClosureIn(BaseModel):
    """Close a market now: the open window closes at once, later windows today stay shut."""

    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(max_length=200, examples=["台风红色预警 Typhoon signal red"])


class ClosureOut(BaseModel):
    """An emergency closure of a market for the rest of a day."""

    id: str = Field(examples=["cl_1a2b3c4d5e6f7a8b"])
    market_id: str = Field(examples=["XZ-03"])
    district: District
    date: dt.date
    reason: str
    closed_at: datetime
    closed_window: str | None = Field(description="The window closed at once, if one was open.")
    shut_windows: list[str] = Field(description="Later windows of the day that stay shut.")
    reopened_at: datetime | None = None


def timeline_router(timeline: Timeline) -> APIRouter:
    """Routes reading the timeline and closing markets."""
    router = APIRouter(prefix="/v1", tags=["timeline"])

    async def own_market(caller: Principal, market_id: str) -> District:
        district = await timeline.district_of(market_id)
        _scope(caller, district)
        return district

    @router.get(
        "/markets/{market_id}/timeline",
        response_model=list[InstanceOut],
        responses=problems(401, 403, 404, 422),
    )
    async def get_timeline(
        market_id: MarketIdPath,
        caller: StaffCaller,
        on: Annotated[date | None, Query(alias="date")] = None,
    ) -> list[InstanceOut]:
        """The market's window instances on a local date (default today), with their state."""
        await own_market(caller, market_id)
        today = local_today(timeline.clock.now())
        day = on or today
        if abs(day - today) > TIMELINE_REACH:
            raise ProblemError("date_out_of_range", 422, "at most 60 days from today")
        return [InstanceOut.of(i) for i in await timeline.instances(market_id, day)]

    @router.get("/open-now", response_model=list[InstanceOut], responses=problems(401, 403))
    async def open_now(caller: StaffCaller, district: District | None = None) -> list[InstanceOut]:
        """Window instances open right now (a district's, or the city's)."""
        return [InstanceOut.of(i) for i in await timeline.open_now(_scope(caller, district))]

    @router.get("/boundaries", response_model=list[DueOut], responses=problems(401, 403, 422))
    async def boundaries(
        caller: StaffCaller,
        start: Annotated[datetime, Query(alias="from")],
        end: Annotated[datetime, Query(alias="to")],
        district: District | None = None,
    ) -> list[DueOut]:
        """What is due in ``[from, to)`` (at most 8 days), earliest first."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ProblemError("validation_failed", 422, "from and to need a UTC offset")
        if end - start > MAX_RANGE:
            raise ProblemError("range_too_long", 422, "at most 8 days")
        due = await timeline.due_between(start, end, _scope(caller, district))
        return [
            DueOut(
                id=t.id,
                market_id=t.market_id,
                kind=t.kind,
                type=t.event.event_type(),
                due=t.due,
                date=t.day,
                window_id=None if t.instance is None else t.instance.split("|", 1)[1],
            )
            for t in due
        ]

    def closure_out(result: ClosureResult) -> ClosureOut:
        c = result.closure
        return ClosureOut(
            id=c.id,
            market_id=result.market_id,
            district=result.district,
            date=c.first_date,
            reason=c.reason,
            closed_at=c.declared_at,
            closed_window=result.closed_window,
            shut_windows=result.shut_windows,
            reopened_at=c.lifted_at,
        )

    @router.post(
        "/markets/{market_id}/closures",
        response_model=ClosureOut,
        status_code=201,
        responses={
            200: {"description": "A closure of today was already in force."},
            **problems(401, 403, 404),
        },
    )
    async def close_market(
        market_id: MarketIdPath, body: ClosureIn, caller: CloserCaller, response: Response
    ) -> ClosureOut:
        """Close a market now (typhoon signal, accident): district staff (own) or admin."""
        await own_market(caller, market_id)
        result = await timeline.close_now(market_id, body.reason)
        if result.existing:
            response.status_code = 200
        response.headers["Location"] = f"/v1/markets/{market_id}/closures/{result.closure.id}"
        return closure_out(result)

    @router.delete(
        "/markets/{market_id}/closures/{closure_id}",
        response_model=ClosureOut,
        responses=problems(401, 403, 404),
    )
    async def reopen_market(
        market_id: MarketIdPath,
        closure_id: Annotated[str, Path(max_length=64, pattern=r"^cl_[0-9a-f]{1,60}$")],
        caller: CloserCaller,
    ) -> ClosureOut:
        """Reopen a closed market: today's later windows open again."""
        district = await own_market(caller, market_id)
        closure, _ = await timeline.reopen(market_id, closure_id)
        return closure_out(ClosureResult(closure, market_id, district, None))

    return router
