"""Allocation's domain errors: a stable code, a detail and extra fields; no HTTP here.

The code -> HTTP status map and the zh-CN / en messages live at the edge
(:mod:`allocation.entrypoints.problems`); a new code is added to :data:`CODES` here and given a
message (and a status, if not 409) there.
"""

from __future__ import annotations

#: Every code the allocation domain and service layer refuse a request with. Clients depend on
#: them: never rename one.
CODES: frozenset[str] = frozenset(
    {
        "stall_taken",
        "overlapping_booking",
        "weekly_cap_reached",
        "category_not_permitted",
        "health_certificate_required",
        "outside_booking_horizon",
        "held_for_priority",
        "vendor_suspended",
        "market_suspended",
        "window_not_found",
        "stall_not_found",
        "stall_unavailable",
        "market_not_found",
        "booking_not_found",
        "vendor_not_found",
        "idempotency_key_reused",
        "idempotency_key_required",
        "illegal_transition",
        "check_in_closed",
        "stall_code_invalid",
        "stall_code_revoked",
        "wrong_stall",
        "phone_taken",
        "invalid_credentials",
        "too_many_attempts",
        "window_passed",
        "suspension_too_long",
        "suspension_not_found",
        "invalid_date_range",
        "date_in_past",
        "date_out_of_range",
        "catalogue_conflict",
        "applications_only",
        "draw_pending",
        "applications_closed",
        "application_not_found",
        "draw_not_found",
        "overlapping_application",
        "identity_taken",
        "too_many_registrations",
        "too_many_bookings",
        "registration_not_found",
        "invalid_code",
        "sms_unavailable",
        "claim_not_found",
        "claim_pending",
        "too_many_claims",
        "illegal_claim_transition",
        "claims_changed",
    }
)


class Rejected(Exception):
    """The domain refuses a request: a stable ``code``, an optional detail, extra fields."""

    def __init__(self, code: str, detail: str | None = None, **extra: object):
        super().__init__(detail or code)
        self.code = code
        self.detail = detail
        self.extra = extra


class BookingRejected(Rejected):
    """A booking decision or a booking transition refused (the rules said no)."""


class IllegalTransition(BookingRejected):
    """The booking's state does not allow the action (not in the transition table)."""

    def __init__(self, detail: str | None = None, **extra: object):
        super().__init__("illegal_transition", detail, **extra)


def rejected(code: str, detail: str | None = None, **extra: object) -> Rejected:
    """The domain error for ``code`` (``raise rejected(...)``, as callers did before)."""
    return Rejected(code, detail, **extra)
