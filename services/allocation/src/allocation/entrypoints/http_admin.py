"""Administration: catalogue, schedules, suspensions and stall codes (admin role)."""

from __future__ import annotations

import html
import io
from typing import Annotated

import segno
from fastapi import APIRouter, Body, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from allocation.bootstrap import Allocation
from allocation.domain import stall_codes
from allocation.domain.errors import rejected
from allocation.entrypoints.deps import AllocationDep, CurrentAdmin
from allocation.entrypoints.schemas import (
    IdempotencyKey,
    ImportView,
    LiftView,
    StallCodeView,
    SuspensionRecordView,
    SuspensionRequest,
    SuspensionView,
)
from allocation.service_layer.markets import DeclareSuspension
from contracts.catalogue import Catalogue, Market, MarketWindow, Stall
from contracts.events import StallCodeIssued, StallCodeRevoked
from stallkit.openapi import problems

router = APIRouter(prefix="/v1", tags=["admin"])


@router.put("/admin/catalogue")
async def import_catalogue(
    body: Catalogue, _: CurrentAdmin, allocation: AllocationDep
) -> ImportView:
    """Create or update many markets and stalls at once (idempotent; used to seed)."""
    result = await allocation.catalogue.import_catalogue(body)
    return ImportView(**result.__dict__)


@router.put(
    "/admin/markets/{market_id}",
    responses={201: {"model": Market, "description": "Created."}, **problems(409)},
)
async def put_market(
    market_id: str, body: Market, _: CurrentAdmin, allocation: AllocationDep, response: Response
) -> Market:
    """Create or replace a market (its schedule included)."""
    if body.id != market_id:
        raise rejected("catalogue_conflict", "market id in the path and body differ")
    if await allocation.catalogue.put_market(body):
        response.status_code = status.HTTP_201_CREATED
    return body


@router.put("/admin/markets/{market_id}/schedule")
async def put_schedule(
    market_id: str,
    windows: Annotated[list[MarketWindow], Body(min_length=1, max_length=8)],
    _: CurrentAdmin,
    allocation: AllocationDep,
) -> Market:
    """Replace a market's weekly windows."""
    market = await allocation.markets.market(market_id)
    try:
        changed = Market.model_validate({**market.model_dump(), "windows": windows})
    except ValidationError as exc:  # windows valid one by one, not together (a repeated id)
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    await allocation.catalogue.put_market(changed)
    return changed


@router.put(
    "/admin/stalls/{stall_id}",
    responses={201: {"model": Stall, "description": "Created."}, **problems(409)},
)
async def put_stall(
    stall_id: str, body: Stall, _: CurrentAdmin, allocation: AllocationDep, response: Response
) -> Stall:
    """Create or replace a stall (category, active)."""
    if body.id != stall_id:
        raise rejected("catalogue_conflict", "stall id in the path and body differ")
    market = await allocation.markets.market(body.market_id)
    if body.category not in market.zones:
        raise rejected("catalogue_conflict", "the market has no zone for this category")
    if await allocation.catalogue.put_stall(body):
        response.status_code = status.HTTP_201_CREATED
    return body


@router.post(
    "/admin/markets/{market_id}/suspensions",
    status_code=status.HTTP_201_CREATED,
    response_model=SuspensionView,
    responses={200: {"model": SuspensionView, "description": "Replay of an earlier request."}},
)
async def suspend_market(
    market_id: str,
    body: SuspensionRequest,
    _: CurrentAdmin,
    allocation: AllocationDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> SuspensionView:
    """Suspend a market for a date range; its bookings are cancelled without penalty.

    With an ``Idempotency-Key`` a retry returns the same suspension (200) and finishes
    cancelling what an interrupted attempt left; without one every request is a new suspension.
    """
    result = await allocation.markets.declare(
        DeclareSuspension(
            market_id=market_id,
            first_date=body.first_date,
            last_date=body.last_date,
            reason=body.reason,
            idempotency_key=idempotency_key,
        )
    )
    suspension = result.suspension
    response.headers["Location"] = f"/v1/admin/markets/{market_id}/suspensions/{suspension.id}"
    if result.replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return SuspensionView.declared(suspension, result.cancelled_bookings)


@router.get("/admin/markets/{market_id}/suspensions")
async def list_suspensions(
    market_id: str, _: CurrentAdmin, allocation: AllocationDep
) -> list[SuspensionRecordView]:
    """The market's suspensions, lifted ones included, by first date."""
    found = await allocation.markets.suspensions_of(market_id)
    return [SuspensionRecordView.of(s) for s in found]


@router.get("/admin/markets/{market_id}/suspensions/{suspension_id}")
async def read_suspension(
    market_id: str, suspension_id: str, _: CurrentAdmin, allocation: AllocationDep
) -> SuspensionRecordView:
    """One suspension of the market."""
    return SuspensionRecordView.of(await allocation.markets.suspension(market_id, suspension_id))


@router.delete("/admin/markets/{market_id}/suspensions/{suspension_id}")
async def lift_suspension(
    market_id: str, suspension_id: str, _: CurrentAdmin, allocation: AllocationDep
) -> LiftView:
    """Lift one suspension: its dates from today on reopen unless another suspension has them."""
    result = await allocation.markets.lift(market_id, suspension_id, announce=True)
    return LiftView.lifted(result.suspension, result.reopened_dates, result.already_lifted)


async def _known_stall(allocation: Allocation, stall_id: str) -> Stall:
    """The stall, or ``stall_not_found`` (an unknown id costs one version read)."""
    view = allocation.catalogue.view
    if stall_id not in view.stalls:
        view = await allocation.catalogue.refresh()
    stall = view.stalls.get(stall_id)
    if stall is None:
        raise rejected("stall_not_found")
    return stall


async def _stall_code(allocation: Allocation, stall_id: str) -> StallCodeView:
    await _known_stall(allocation, stall_id)
    version = allocation.catalogue.view.code_versions.get(stall_id, 0)
    if version <= 0:
        raise rejected("stall_code_revoked", "no valid code: issue a new one")
    return StallCodeView(
        stall_id=stall_id,
        version=version,
        code=stall_codes.sign(allocation.signing_key, stall_id, version),
    )


@router.post("/admin/stalls/{stall_id}/code", status_code=status.HTTP_201_CREATED)
async def issue_code(stall_id: str, _: CurrentAdmin, allocation: AllocationDep) -> StallCodeView:
    """Issue a new code for the stall; every earlier code stops verifying."""
    market_id = (await _known_stall(allocation, stall_id)).market_id
    await allocation.catalogue.change_code_version(
        stall_id,
        lambda v: StallCodeIssued(market_id=market_id, stall_id=stall_id, code_version=v),
        bump=1,
    )
    return await _stall_code(allocation, stall_id)


@router.delete("/admin/stalls/{stall_id}/code", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_code(stall_id: str, _: CurrentAdmin, allocation: AllocationDep) -> None:
    """Revoke the stall's code; scans and check-ins with it fail until a new one is issued."""
    market_id = (await _known_stall(allocation, stall_id)).market_id
    await allocation.catalogue.change_code_version(
        stall_id,
        lambda v: StallCodeRevoked(market_id=market_id, stall_id=stall_id, code_version=v),
        bump=-1,
    )


@router.get("/admin/stalls/{stall_id}/code")
async def read_code(stall_id: str, _: CurrentAdmin, allocation: AllocationDep) -> StallCodeView:
    """The stall's current code text."""
    return await _stall_code(allocation, stall_id)


def _qr(text: str, kind: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind=kind, scale=6, border=2)
    return buffer.getvalue()


@router.get(
    "/stalls/{stall_id}/code.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The QR code."}},
)
async def code_svg(stall_id: str, _: CurrentAdmin, allocation: AllocationDep) -> Response:
    """The stall's code as an SVG QR code, to print."""
    code = await _stall_code(allocation, stall_id)
    return Response(_qr(code.code, "svg"), media_type="image/svg+xml")


@router.get(
    "/stalls/{stall_id}/code.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The QR code."}},
)
async def code_png(stall_id: str, _: CurrentAdmin, allocation: AllocationDep) -> Response:
    """The stall's code as a PNG QR code."""
    code = await _stall_code(allocation, stall_id)
    return Response(_qr(code.code, "png"), media_type="image/png")


@router.get("/admin/markets/{market_id}/codes", response_class=HTMLResponse)
async def code_sheet(market_id: str, _: CurrentAdmin, allocation: AllocationDep) -> HTMLResponse:
    """A printable sheet of every active stall code of a market."""
    market = await allocation.markets.market(market_id)
    cells = []
    for stall in allocation.catalogue.view.market_stalls(market_id):
        version = allocation.catalogue.view.code_versions.get(stall.id, 0)
        if not stall.active or version <= 0:
            continue
        svg = _qr(stall_codes.sign(allocation.signing_key, stall.id, version), "svg").decode()
        svg = svg[svg.index("<svg") :]
        cells.append(
            f"<figure>{svg}<figcaption>{html.escape(stall.id)} · v{version}</figcaption></figure>"
        )
    page = (
        "<!doctype html><html lang='zh-CN'><meta charset='utf-8'>"
        f"<title>{html.escape(market.name_zh)} 摊位码</title>"
        "<style>body{font-family:sans-serif}main{display:grid;"
        "grid-template-columns:repeat(4,1fr);gap:12px}figure{margin:0;text-align:center;"
        "break-inside:avoid}svg{width:100%;height:auto}</style>"
        f"<h1>{html.escape(market.name_zh)} / {html.escape(market.name_en)}</h1>"
        f"<main>{''.join(cells)}</main></html>"
    )
    return HTMLResponse(page)
