"""The lottery: vendors apply for a window until its draw; anyone reads a published draw."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, Field, model_validator

from allocation.bootstrap import Allocation
from allocation.entrypoints.deps import AllocationDep, CurrentVendor
from allocation.entrypoints.schemas import Strict
from allocation.service_layer.draws import Apply
from contracts.catalogue import MARKET_ID_PATTERN, STALL_ID_PATTERN, WINDOW_ID_PATTERN
from contracts.lottery import MAX_PREFERENCES, DrawInputs, DrawResult
from contracts.text import IsoDate
from stallkit.auth import Principal, Role, caller_with_role
from stallkit.fastpath import FastPathRoute, fast_path, json_body
from stallkit.openapi import problems

router = APIRouter(prefix="/v1", tags=["lottery"], route_class=FastPathRoute)

MarketId = Annotated[str, Path(pattern=MARKET_ID_PATTERN, examples=["XZ-01"])]
WindowId = Annotated[str, Path(pattern=WINDOW_ID_PATTERN, examples=["evening"])]
StallId = Annotated[str, Field(pattern=STALL_ID_PATTERN)]


class ApplicationRequest(Strict):
    """Body of ``POST /v1/applications``."""

    market_id: str = Field(pattern=MARKET_ID_PATTERN, examples=["XZ-01"])
    date: IsoDate = Field(description="Local date of the window, YYYY-MM-DD.")
    window_id: str = Field(pattern=WINDOW_ID_PATTERN, examples=["evening"])
    stall_ids: list[StallId] = Field(
        default_factory=list,
        max_length=MAX_PREFERENCES,
        description="Up to three stalls, best first; empty: any stall of a permitted category.",
        examples=[["XZ-01-C001", "XZ-01-C002"]],
    )

    @model_validator(mode="after")
    def _distinct(self) -> ApplicationRequest:
        if len(set(self.stall_ids)) != len(self.stall_ids):
            raise ValueError("a stall is ranked twice")
        return self


class DrawState(BaseModel):
    """Where the window's draw stands."""

    state: Literal["open", "closed", "drawn", "done"]
    draw_at: dt.datetime = Field(description="When applications close and the draw runs.")
    commitment: str = Field(description="SHA-256 of the draw's seed, published in advance.")


class ApplicationView(BaseModel):
    """A vendor's application and what the draw gave them."""

    market_id: str
    date: dt.date
    window_id: str
    stall_ids: list[str]
    applied_at: dt.datetime
    pseudonym: str = Field(description="The applicant's name in the published draw.")
    status: Literal["pending", "won", "lost", "void"] = Field(
        description="won: booked (booking_id); void: drawn, but the booking rules refused it."
    )
    booking_id: str | None
    stall_id: str | None
    reason: str | None
    draw: DrawState


class DrawView(BaseModel):
    """A draw as published: before it runs, the seed's commitment; after, inputs and result.

    ``stallctl draw verify`` re-runs ``inputs`` and compares with ``result``.
    """

    market_id: str
    date: dt.date
    window_id: str
    state: Literal["open", "closed", "drawn", "done"]
    draw_at: dt.datetime
    commitment: str
    applicants: int
    inputs: DrawInputs | None
    result: DrawResult | None
    result_digest: str | None


async def _apply(
    request: Request, principal: Principal, body: ApplicationRequest
) -> tuple[ApplicationView, bool]:
    allocation: Allocation = request.app.state.allocation  # hot path: no dependency to solve
    view, created = await allocation.draws.apply(
        Apply(principal.sub, body.market_id, body.date, body.window_id, tuple(body.stall_ids))
    )
    return ApplicationView.model_validate(view), created


async def _apply_fast(request: Request) -> Response | None:
    """The application path's ordinary request (see :mod:`stallkit.fastpath`)."""
    principal = caller_with_role(request, Role.VENDOR)
    body = await json_body(request, ApplicationRequest)
    if body is None:
        return None
    view, created = await _apply(request, principal, body)
    return Response(
        view.model_dump_json(),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.post(
    "/applications",
    status_code=status.HTTP_201_CREATED,
    response_model=ApplicationView,
    responses={
        200: {"model": ApplicationView, "description": "The application's stalls changed."},
        **problems(404, 409, 422),
    },
)
@fast_path(_apply_fast)
async def apply(
    body: ApplicationRequest,
    principal: CurrentVendor,
    request: Request,
    response: Response,
) -> ApplicationView:
    """Apply for a window's draw (until the draw); applying again changes the stalls ranked."""
    view, created = await _apply(request, principal, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@router.get("/applications")
async def my_applications(
    principal: CurrentVendor, allocation: AllocationDep
) -> list[ApplicationView]:
    """The caller's applications, latest draw first, with what each draw gave them."""
    return [ApplicationView.model_validate(v) for v in await allocation.draws.mine(principal.sub)]


@router.delete(
    "/applications/{market_id}/{date}/{window_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(404, 409),
)
async def withdraw(
    market_id: MarketId,
    date: Annotated[IsoDate, Path()],
    window_id: WindowId,
    principal: CurrentVendor,
    allocation: AllocationDep,
) -> Response:
    """Withdraw an application before the draw."""
    await allocation.draws.withdraw(principal.sub, market_id, date, window_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/draws/{market_id}/{date}/{window_id}", responses=problems(404))
async def published_draw(
    market_id: MarketId,
    date: Annotated[IsoDate, Path()],
    window_id: WindowId,
    allocation: AllocationDep,
) -> DrawView:
    """A window's draw, public: the commitment before it; the inputs and result after."""
    return DrawView.model_validate(await allocation.draws.publication(market_id, date, window_id))
