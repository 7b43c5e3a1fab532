"""HTTP routes of the inspection service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from contracts.catalogue import STALL_ID_PATTERN, WINDOW_ID_PATTERN, market_of_stall
from inspection.adapters.expectation_store import ExpectationStore
from inspection.domain.expected import ExpectedBooking, Slot
from inspection.domain.violations import ViolationCatalogue
from inspection.entrypoints.deps import PatrolOrAdmin, Staff
from stallkit.clock import Clock
from stallkit.problems import ProblemError, register_messages

register_messages(
    {"no_booking": ("该摊位在此时段没有预约", "No booking for this stall and window")}
)

StallIdPath = Annotated[str, Path(pattern=STALL_ID_PATTERN, examples=["XZ-03-A017"])]


class ExpectedOut(BaseModel):
    """The booking a patrol should find at a stall in a window."""

    stall_id: str = Field(examples=["XZ-03-A017"])
    market_id: str = Field(examples=["XZ-03"])
    district: str | None = Field(description="District of the market, when known.")
    date: dt.date = Field(description="Local date of the window.")
    window_id: str = Field(examples=["evening"])
    booking_id: str = Field(examples=["bk_8f14e45fceea167a"])
    vendor_id: str = Field(description="The vendor who should be there.")
    category: str = Field(examples=["cooked_food"])
    starts_at: dt.datetime = Field(description="Window start (UTC).")
    ends_at: dt.datetime = Field(description="Window end (UTC).")

    @classmethod
    def of(cls, booking: ExpectedBooking, district: str | None) -> ExpectedOut:
        """The response for an expected booking."""
        return cls(
            stall_id=booking.stall_id,
            market_id=booking.market_id,
            district=district,
            date=booking.date,
            window_id=booking.window_id,
            booking_id=booking.booking_id,
            vendor_id=booking.vendor_id,
            category=booking.category,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
        )


def expectation_router(store: ExpectationStore, clock: Clock) -> APIRouter:
    """Routes reading the "who should be where" projection held in ``store``."""
    router = APIRouter(prefix="/v1", tags=["inspection"])

    @router.get(
        "/stalls/{stall_id}/expected",
        response_model=ExpectedOut,
        responses={
            401: {"description": "No or invalid token."},
            403: {"description": "Not a patrol officer or administrator."},
            404: {"description": "Nobody booked the stall for the window (code `no_booking`)."},
        },
    )
    async def get_expected(
        stall_id: StallIdPath,
        principal: PatrolOrAdmin,
        window_id: Annotated[str, Query(pattern=WINDOW_ID_PATTERN, examples=["evening"])],
        date: Annotated[
            dt.date | None, Query(description="Local date; today (service clock) if omitted.")
        ] = None,
    ) -> ExpectedOut:
        """Who should be at the stall in the window: the booked vendor (patrol or admin)."""
        market_id = market_of_stall(stall_id)
        slot = Slot(stall_id, date or clock.today(), window_id)
        booking = await store.get_expected(market_id, slot)
        if booking is None:
            raise ProblemError("no_booking", 404)
        market = await store.get_market(market_id)
        return ExpectedOut.of(booking, market.district if market else None)

    return router


class ViolationOut(BaseModel):
    """A violation type of the catalogue and how it is handled."""

    type: str = Field(examples=["out_of_line_box"])
    name_zh: str = Field(examples=["越线经营"])
    name_en: str = Field(examples=["Vending outside the line box"])
    minor: bool
    exempt: bool = Field(description='On the "1+1" exemption list: a first offence is a warning.')
    penalty_min_cny: int = Field(description="Discretion benchmark: lower bound (CNY).")
    penalty_max_cny: int = Field(description="Discretion benchmark: upper bound (CNY).")
    deadline_hours: int = Field(description="Disposal deadline of a case, from its opening.")


def catalogue_router(catalogue: ViolationCatalogue) -> APIRouter:
    """The violation catalogue, for patrol pages and offices."""
    router = APIRouter(prefix="/v1", tags=["inspection"])

    @router.get("/violations", response_model=list[ViolationOut])
    async def list_violations(_: Staff) -> list[ViolationOut]:
        """Every violation type a patrol can record."""
        return [ViolationOut(**vars(v)) for v in catalogue]

    return router
