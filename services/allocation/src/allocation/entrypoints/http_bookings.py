"""Bookings: book, list, read, cancel, check in."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from allocation.bootstrap import Allocation
from allocation.domain.errors import rejected
from allocation.entrypoints.deps import AllocationDep, CurrentVendor
from allocation.entrypoints.schemas import (
    BookingRequest,
    BookingView,
    CheckInRequest,
    IdempotencyKey,
)
from allocation.service_layer.bookings import BookStall
from stallkit.openapi import problems

router = APIRouter(prefix="/v1/bookings", tags=["bookings"])

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
async def book_stall(
    body: BookingRequest,
    principal: CurrentVendor,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Book a stall for a window; every double-limit rule is checked atomically."""
    # The hot path: taken from the app, not through a dependency FastAPI solves per request
    # (about a tenth of the booking's cost under load).
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
