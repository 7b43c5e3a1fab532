"""Bookings: book, list, read, cancel, check in."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from allocation.bootstrap import Allocation
from allocation.domain.errors import rejected
from allocation.entrypoints.deps import AllocationDep, CurrentVendor
from allocation.entrypoints.schemas import (
    IDEMPOTENCY_KEY,
    BookingRequest,
    BookingView,
    CheckInRequest,
    IdempotencyKey,
)
from allocation.service_layer.bookings import BookStall
from stallkit.auth import Principal, Role, caller_with_role
from stallkit.fastpath import FastPathRoute, fast_path, json_body
from stallkit.openapi import problems

router = APIRouter(prefix="/v1/bookings", tags=["bookings"], route_class=FastPathRoute)

_TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {
        **problems(429)[429],
        "description": (
            "Too many booking attempts by this vendor in this minute (`too_many_bookings`, "
            "`ALLOCATION_BOOKING_ATTEMPTS_PER_MINUTE`); `Retry-After` says when to try again."
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds until the next minute, when attempts count again.",
                "schema": {"type": "integer"},
            }
        },
    }
}

#: Booking dates accepted past the longest booking horizon: the script answers those itself.
HORIZON_SLACK_DAYS = 1


def _check_reachable(allocation: Allocation, day: date) -> None:
    """Refuse, before any date arithmetic, a date no booking rule could ever accept.

    A past date is ``window_passed`` (as the booking script says for yesterday), one beyond the
    longest booking horizon ``outside_booking_horizon``; year 1 or 9999 never reach the rules.
    """
    today = allocation.clock.today()
    if day < today - timedelta(days=1):
        raise rejected("window_passed")
    policy = allocation.policy
    horizon = max(policy.priority_horizon_days, policy.standard_horizon_days)
    if day > today + timedelta(days=horizon + HORIZON_SLACK_DAYS):
        raise rejected("outside_booking_horizon")


async def _book(
    request: Request, principal: Principal, body: BookingRequest, idempotency_key: str | None
) -> Response:
    # Taken from the app, not through a dependency FastAPI would solve on every request.
    allocation: Allocation = request.app.state.allocation
    if not idempotency_key:
        raise rejected("idempotency_key_required")
    _check_reachable(allocation, body.date)
    booking, replayed = await allocation.bookings.book(
        BookStall(
            vendor_id=principal.sub,
            stall_id=body.stall_id,
            date=body.date,
            window_id=body.window_id,
            idempotency_key=idempotency_key,
        )
    )
    # Serialized once here: the hot path skips FastAPI's re-validation of the response model.
    headers = {"Location": f"/v1/bookings/{booking.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        BookingView.of(booking, allocation.policy).model_dump_json(),
        status_code=status.HTTP_200_OK if replayed else status.HTTP_201_CREATED,
        media_type="application/json",
        headers=headers,
    )


async def _book_fast(request: Request) -> Response | None:
    """The booking path's ordinary request (see :mod:`stallkit.fastpath`); anything it does not
    take goes the documented way, which answers with the same refusals FastAPI gives."""
    principal = caller_with_role(request, Role.VENDOR)  # 401/403 come first either way
    key = request.headers.get("idempotency-key")
    if key is None or not IDEMPOTENCY_KEY.fullmatch(key):
        return None
    body = await json_body(request, BookingRequest)
    if body is None:
        return None
    return await _book(request, principal, body, key)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BookingView,
    responses={
        200: {"model": BookingView, "description": "Replay of an earlier request."},
        **problems(404, 409),
        **_TOO_MANY,
    },
)
@fast_path(_book_fast)
async def book_stall(
    body: BookingRequest,
    principal: CurrentVendor,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Book a stall for a window; every double-limit rule is checked atomically."""
    return await _book(request, principal, body, idempotency_key)


@router.get("")
async def my_bookings(
    principal: CurrentVendor,
    allocation: AllocationDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[BookingView]:
    """The caller's bookings, latest window first."""
    ids = await allocation.ledger.vendor_booking_ids(principal.sub, limit)
    bookings = await allocation.ledger.get_many(ids)
    return [BookingView.of(b, allocation.policy) for b in bookings]


@router.get("/{booking_id}")
async def read_booking(
    booking_id: str, principal: CurrentVendor, allocation: AllocationDep
) -> BookingView:
    """One of the caller's bookings."""
    booking = await allocation.bookings.owned(principal.sub, booking_id)
    return BookingView.of(booking, allocation.policy)


@router.delete("/{booking_id}", responses=problems(409))
async def cancel_booking(
    booking_id: str, principal: CurrentVendor, allocation: AllocationDep
) -> BookingView:
    """Cancel: free until 2 h before the start, later it counts as a no-show."""
    booking = await allocation.bookings.cancel(principal.sub, booking_id)
    return BookingView.of(booking, allocation.policy)


@router.post("/{booking_id}/check-in", responses=problems(409))
async def check_in(
    booking_id: str, body: CheckInRequest, principal: CurrentVendor, allocation: AllocationDep
) -> BookingView:
    """Check in by presenting the scanned stall code within the check-in window."""
    booking = await allocation.bookings.check_in(
        principal.sub, booking_id, body.code, allocation.signing_key.public_key()
    )
    return BookingView.of(booking, allocation.policy)
