"""The public catalogue: markets, their windows and availability."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from allocation.domain import stall_codes
from allocation.entrypoints.deps import AllocationDep
from allocation.entrypoints.schemas import (
    AvailabilityView,
    MarketSummary,
    PublicKeyView,
    WindowAvailabilityView,
)
from contracts.catalogue import Category, District, Market
from contracts.text import IsoDate
from stallkit.clock import Clock

router = APIRouter(prefix="/v1", tags=["catalogue"])


def _open_now(market: Market, clock: Clock) -> bool:
    local = clock.local_now()
    minute = local.hour * 60 + local.minute
    return any(
        local.isoweekday() in w.days and w.start_minute <= minute < w.end_minute
        for w in market.windows
    )


@router.get("/markets")
async def list_markets(
    allocation: AllocationDep,
    district: District | None = None,
    category: Category | None = None,
    open_now: bool | None = None,
) -> list[MarketSummary]:
    """Markets, optionally filtered by district, category zone and whether open now."""
    view = await allocation.catalogue.refresh()
    result = []
    for market in sorted(view.markets.values(), key=lambda m: m.id):
        if district is not None and market.district is not district:
            continue
        if category is not None and category not in market.zones:
            continue
        is_open = _open_now(market, allocation.clock)
        if open_now is not None and is_open != open_now:
            continue
        stalls = view.active_stall_count(market.id)
        result.append(MarketSummary.of(market, stalls, is_open))
    return result


@router.get("/markets/{market_id}")
async def market_detail(market_id: str, allocation: AllocationDep) -> MarketSummary:
    """One market with its weekly windows."""
    market = await allocation.markets.market(market_id)
    view = allocation.catalogue.view
    stalls = view.active_stall_count(market.id)
    return MarketSummary.of(market, stalls, _open_now(market, allocation.clock))


@router.get("/markets/{market_id}/availability")
async def availability(
    market_id: str, allocation: AllocationDep, date: Annotated[IsoDate | None, Query()] = None
) -> AvailabilityView:
    """Per window on the date (YYYY-MM-DD, yesterday to 60 days ahead; default today)."""
    day = date or allocation.clock.today()
    windows = await allocation.markets.availability(market_id, day)
    return AvailabilityView(
        market_id=market_id,
        date=day,
        windows=[WindowAvailabilityView(**w.__dict__) for w in windows],
    )


@router.get("/stall-codes/public-key")
async def public_key(allocation: AllocationDep) -> PublicKeyView:
    """The Ed25519 public key that verifies stall codes offline."""
    return PublicKeyView(public_key=stall_codes.public_key_b64(allocation.signing_key))
