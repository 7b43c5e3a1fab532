"""HTTP routes of the reporting service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from contracts.catalogue import MARKET_ID_PATTERN, District
from reporting.adapters.stats_store import StatsStore
from reporting.domain.stats import ALL, Scope, ScopeKind
from stallkit.problems import ProblemError


class StatsOut(BaseModel):
    """How many events reporting has counted, by full event type."""

    events: dict[str, int] = Field(
        description="Count per event type (with version).",
        examples=[{"cn.gov.zhuhai.markets.booking.created.v1": 42}],
    )
    total: int = Field(description="All events counted.", examples=[42])


def stats_router(store: StatsStore) -> APIRouter:
    """Routes reading the counters held in ``store``."""
    router = APIRouter(prefix="/v1", tags=["reports"])

    @router.get("/stats", response_model=StatsOut)
    async def get_stats(
        district: Annotated[District | None, Query(description="Only this district.")] = None,
        market_id: Annotated[
            str | None, Query(pattern=MARKET_ID_PATTERN, description="Only this market.")
        ] = None,
    ) -> StatsOut:
        """Events counted so far by type: overall, or for one district or one market."""
        if district is not None and market_id is not None:
            raise ProblemError("validation_failed", 422, "give district or market_id, not both")
        scope = ALL
        if district is not None:
            scope = Scope(ScopeKind.DISTRICT, district.value)
        elif market_id is not None:
            scope = Scope(ScopeKind.MARKET, market_id)
        stats = await store.stats(scope)
        return StatsOut(events=dict(sorted(stats.events.items())), total=stats.total)

    return router
