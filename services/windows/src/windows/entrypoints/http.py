"""HTTP routes of the windows service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from contracts.catalogue import MARKET_ID_PATTERN, LocalTime
from stallkit.problems import ProblemError, register_messages
from windows.adapters.schedule_store import ScheduleStore
from windows.domain.schedule import MarketSchedule

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
