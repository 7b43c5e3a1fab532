"""Allocation settings: every booking rule of the brief is a setting with its default."""

from __future__ import annotations

import base64
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from stallkit.settings import DEV_JWT_SECRET, CommonSettings

#: base64 of b"dev-only-stall-code-seed-32bytes": the development Ed25519 seed for stall codes.
DEV_STALL_CODE_SEED_B64 = "ZGV2LW9ubHktc3RhbGwtY29kZS1zZWVkLTMyYnl0ZXM="


class AllocationSettings(CommonSettings):
    """Settings of the allocation service (env prefix ``ALLOCATION_``)."""

    model_config = SettingsConfigDict(
        env_prefix="ALLOCATION_", extra="ignore", populate_by_name=True
    )

    dev_secrets: ClassVar[dict[str, str]] = {
        "jwt_secret": DEV_JWT_SECRET,
        "stall_code_signing_key": DEV_STALL_CODE_SEED_B64,
    }

    service_name: str = "allocation"
    stall_code_signing_key: str = Field(
        default=DEV_STALL_CODE_SEED_B64,
        description="base64 of the 32-byte Ed25519 seed that signs stall codes.",
    )
    weekly_cap: int = Field(default=5, ge=1, description="Bookings per vendor per ISO week.")
    priority_horizon_days: int = Field(
        default=7, ge=0, description="Priority groups book from D-n."
    )
    standard_horizon_days: int = Field(default=3, ge=0, description="Others book from D-n.")
    priority_hold_share: float = Field(
        default=0.30, ge=0, le=1, description="Share of a window's stalls held for priority groups."
    )
    priority_hold_release: str = Field(
        default="18:00", pattern=r"^\d{2}:\d{2}$", description="Local time on D-1 the hold ends."
    )
    free_cancel_hours: float = Field(
        default=2, ge=0, description="Free cancellation until start-n h."
    )
    check_in_before_minutes: int = Field(default=30, ge=0)
    check_in_after_minutes: int = Field(default=30, ge=1)
    no_show_limit: int = Field(default=3, ge=1, description="No-shows in the period that suspend.")
    no_show_period_days: int = Field(default=30, ge=1)
    no_show_suspension_days: int = Field(default=7, ge=1)
    max_suspension_days: int = Field(default=31, ge=1, description="Longest market suspension.")
    idempotency_ttl_hours: int = Field(default=24, ge=1)
    max_login_failures: int = Field(
        default=10, ge=1, description="Wrong passwords for one number before a lockout."
    )
    login_lockout_minutes: int = Field(default=15, ge=1)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024)

    @field_validator("stall_code_signing_key")
    @classmethod
    def _seed_is_32_bytes(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise ValueError("stall_code_signing_key must be base64") from exc
        if len(raw) != 32:
            raise ValueError("stall_code_signing_key must decode to 32 bytes")
        return value
