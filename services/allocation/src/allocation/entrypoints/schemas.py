"""HTTP request and response bodies (the public v1 contract of allocation)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field

from allocation.adapters.suspensions import Suspension
from allocation.domain.model import Booking, BookingState
from allocation.domain.rules import Policy, check_in_window
from contracts.catalogue import (
    STALL_ID_PATTERN,
    WINDOW_ID_PATTERN,
    Category,
    District,
    Location,
    Market,
    MarketWindow,
)
from contracts.text import IsoDate, PlainText
from stallkit.clock import MARKET_TZ

#: What an ``Idempotency-Key`` header may be: 1 to 128 printable ASCII characters, no spaces.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Unique per intended change; a retry with the same key returns its result.",
    ),
]


class Strict(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid", str_max_length=1000)


class BookingRequest(Strict):
    """Body of ``POST /v1/bookings``."""

    stall_id: str = Field(pattern=STALL_ID_PATTERN, examples=["XZ-03-A017"])
    date: IsoDate = Field(description="Local date of the window, YYYY-MM-DD.")
    window_id: str = Field(pattern=WINDOW_ID_PATTERN, examples=["evening"])


class BookingView(BaseModel):
    """A booking as its vendor sees it."""

    id: str
    vendor_id: str
    market_id: str
    stall_id: str
    date: dt.date
    window_id: str
    category: Category
    state: BookingState
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_at: dt.datetime
    check_in_opens_at: dt.datetime
    check_in_closes_at: dt.datetime
    checked_in_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    late_cancellation: bool
    reason: str | None = Field(description="Why the market cancelled it, if it did.")

    @classmethod
    def of(cls, booking: Booking, policy: Policy) -> BookingView:
        """The view of ``booking``."""
        opens, closes = check_in_window(
            policy, booking.starts_at, booking.ends_at, booking.created_at
        )

        def local(when: dt.datetime | None) -> dt.datetime | None:
            return when.astimezone(MARKET_TZ) if when else None

        return cls(
            id=booking.id,
            vendor_id=booking.vendor_id,
            market_id=booking.market_id,
            stall_id=booking.stall_id,
            date=booking.date,
            window_id=booking.window_id,
            category=booking.category,
            state=booking.state,
            starts_at=local(booking.starts_at),
            ends_at=local(booking.ends_at),
            created_at=local(booking.created_at),
            check_in_opens_at=local(opens),
            check_in_closes_at=local(closes),
            checked_in_at=local(booking.checked_in_at),
            cancelled_at=local(booking.cancelled_at),
            late_cancellation=booking.late_cancellation,
            reason=booking.reason,
        )


class CheckInRequest(Strict):
    """Body of ``POST /v1/bookings/{id}/check-in``: the text of the scanned stall code."""

    code: str = Field(min_length=1, max_length=200, examples=["ZHSC1.XZ-03-A017.1.…"])


class MarketSummary(BaseModel):
    """A market in a list."""

    id: str
    district: District
    name_zh: str
    name_en: str
    address_zh: str
    location: Location
    zones: list[Category]
    windows: list[MarketWindow]
    stall_count: int
    open_now: bool

    @classmethod
    def of(cls, market: Market, stall_count: int, open_now: bool) -> MarketSummary:
        """The summary of ``market``."""
        return cls(**market.model_dump(), stall_count=stall_count, open_now=open_now)


class WindowAvailabilityView(BaseModel):
    """Availability of one window on the date."""

    window_id: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    total: int
    booked: int
    free: int
    held_for_priority: int = Field(description="Free stalls only priority groups may book now.")
    free_stalls: list[str]
    suspended_reason: str | None


class AvailabilityView(BaseModel):
    """Body of ``GET /v1/markets/{id}/availability``."""

    market_id: str
    date: dt.date
    windows: list[WindowAvailabilityView]


class SuspensionRequest(Strict):
    """Body of ``POST /v1/admin/markets/{id}/suspensions``."""

    first_date: IsoDate = Field(description="First suspended date (today or later).")
    last_date: IsoDate = Field(description="Last suspended date (inclusive).")
    reason: PlainText = Field(
        min_length=1, max_length=200, examples=["台风红色预警 Typhoon signal red"]
    )


class SuspensionRecordView(BaseModel):
    """A market suspension as stored."""

    suspension_id: str
    market_id: str
    first_date: dt.date
    last_date: dt.date
    reason: str
    origin: str = Field(description="admin (this API) or windows (a market.suspended event).")
    declared_at: dt.datetime | None
    lifted_at: dt.datetime | None = Field(description="When it was lifted; null while in force.")
    reopened_from: dt.date | None = Field(description="First date the lift reopened.")

    @classmethod
    def fields_of(cls, suspension: Suspension) -> dict[str, object]:
        """The fields of ``suspension`` (times in Zhuhai local time)."""

        def local(when: dt.datetime | None) -> dt.datetime | None:
            return when.astimezone(MARKET_TZ) if when else None

        return {
            "suspension_id": suspension.id,
            "market_id": suspension.market_id,
            "first_date": suspension.first_date,
            "last_date": suspension.last_date,
            "reason": suspension.reason,
            "origin": suspension.origin,
            "declared_at": local(suspension.declared_at),
            "lifted_at": local(suspension.lifted_at),
            "reopened_from": suspension.reopened_from,
        }

    @classmethod
    def of(cls, suspension: Suspension) -> SuspensionRecordView:
        """The view of ``suspension``."""
        return cls.model_validate(cls.fields_of(suspension))


class SuspensionView(SuspensionRecordView):
    """A declared suspension and what declaring it did."""

    cancelled_bookings: int = Field(description="Bookings this request cancelled.")

    @classmethod
    def declared(cls, suspension: Suspension, cancelled_bookings: int) -> SuspensionView:
        """The view of ``suspension`` after cancelling ``cancelled_bookings``."""
        return cls.model_validate(
            {**cls.fields_of(suspension), "cancelled_bookings": cancelled_bookings}
        )


class LiftView(SuspensionRecordView):
    """A lifted suspension."""

    reopened_dates: int = Field(description="Dates this request reopened.")
    already_lifted: bool = Field(description="It had been lifted before; nothing changed.")

    @classmethod
    def lifted(cls, suspension: Suspension, reopened_dates: int, already_lifted: bool) -> LiftView:
        """The view of a lift."""
        return cls.model_validate(
            {
                **cls.fields_of(suspension),
                "reopened_dates": reopened_dates,
                "already_lifted": already_lifted,
            }
        )


class ImportView(BaseModel):
    """Result of a catalogue import."""

    markets: int
    stalls: int
    changed_markets: int
    changed_stalls: int


class StallCodeView(BaseModel):
    """A stall's current code."""

    stall_id: str
    version: int
    code: str = Field(description="The text the QR code carries.")


class PublicKeyView(BaseModel):
    """Key that verifies stall codes."""

    algorithm: str = "Ed25519"
    public_key: str = Field(description="base64 of the raw 32-byte public key.")
