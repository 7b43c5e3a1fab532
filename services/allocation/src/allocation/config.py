"""Allocation settings: every booking rule of the brief is a setting with its default."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, HttpUrl, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from stallkit.keys import Issuer, SigningKey, canonical_seed
from stallkit.settings import CommonSettings, Mode

# Development Ed25519 seeds: public knowledge, refused in production. Their public halves are
# literals in stallkit.devkeys, which the other services trust in development mode.
#: base64 of b"dev-only-stall-code-seed-32bytes": signs stall codes.
DEV_STALL_CODE_SEED_B64 = "ZGV2LW9ubHktc3RhbGwtY29kZS1zZWVkLTMyYnl0ZXM="
#: base64 of b"dev-only-allocation-token-seed!!": signs vendor tokens.
DEV_VENDOR_TOKEN_SEED_B64 = "ZGV2LW9ubHktYWxsb2NhdGlvbi10b2tlbi1zZWVkISE="
#: Salt of the identity numbers' digests in development: public knowledge, refused in production.
DEV_IDENTITY_SALT = "dev-identity-salt-not-secret"

#: The services a vendor token is for: allocation's API, and inspection's for the vendor's own
#: warnings and cases (and the evaluation of a closed case). Windows and reporting are for staff.
VENDOR_TOKEN_AUDIENCE: tuple[str, ...] = ("allocation", "inspection")


class AllocationSettings(CommonSettings):
    """Settings of the allocation service (env prefix ``ALLOCATION_``)."""

    model_config = SettingsConfigDict(
        env_prefix="ALLOCATION_", extra="ignore", populate_by_name=True
    )

    dev_secrets: ClassVar[dict[str, str]] = {
        "stall_code_signing_key": DEV_STALL_CODE_SEED_B64,
        "token_signing_key": DEV_VENDOR_TOKEN_SEED_B64,
        "identity_salt": DEV_IDENTITY_SALT,
    }
    token_audience: ClassVar[str] = "allocation"

    service_name: str = "allocation"
    stall_code_signing_key: str = Field(
        default=DEV_STALL_CODE_SEED_B64,
        description="base64 of the 32-byte Ed25519 seed that signs stall codes.",
    )
    token_signing_key: str = Field(
        default=DEV_VENDOR_TOKEN_SEED_B64,
        repr=False,
        description=(
            "base64 of the 32-byte Ed25519 seed that signs vendor tokens "
            "(ALLOCATION_TOKEN_SIGNING_KEY); its public key must be in STALL_TOKEN_JWKS."
        ),
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
    booking_attempts_per_minute: int = Field(
        default=30,
        ge=0,
        description=(
            "Booking attempts one vendor may make in a minute (replays of an earlier request "
            "do not count; 0: no limit). More are refused with 429 `too_many_bookings` and "
            "`Retry-After` until the next minute: a script cannot out-click a person for a "
            "contested stall."
        ),
    )
    max_login_failures: int = Field(
        default=10,
        ge=1,
        description=(
            "Login attempts for one number from one client address in a lockout period; beyond, "
            "that address is refused for that number (`too_many_attempts`) until it ends."
        ),
    )
    login_lockout_minutes: int = Field(
        default=15, ge=1, description="The period of the per-address login limits."
    )
    login_failures_per_address: int = Field(
        default=50,
        ge=1,
        description="Login attempts from one client address, whatever the numbers, in a period.",
    )
    login_failures_per_number: int = Field(
        default=60,
        ge=1,
        description=(
            "Login attempts for one number from addresses it has not logged in from, in "
            "`login_number_period_minutes` (a guess spread over many addresses). Must be more "
            "than one address can make alone, so that a single attacker cannot reach it."
        ),
    )
    login_number_period_minutes: int = Field(
        default=60, ge=1, description="The period of the per-number login ceiling."
    )
    login_known_address_days: int = Field(
        default=30,
        ge=1,
        description=(
            "How long an address a number logged in from is known to it: attempts from it count "
            "only against that address's own limit for the number."
        ),
    )
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024)
    lottery: bool = Field(
        default=True,
        description="Windows are applied for until their draw, then first come, first served.",
    )
    draw_time: str = Field(
        default="20:00", pattern=r"^\d{2}:\d{2}$", description="Local time of the draw."
    )
    draw_days_before: int = Field(default=2, ge=1, description="The draw runs on D-n.")
    draw_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often due draws are looked for."
    )

    identity_salt: str = Field(
        default=DEV_IDENTITY_SALT,
        min_length=16,
        repr=False,
        description=(
            "Secret salt of the digest that stands for a vendor's resident identity number (the "
            "number itself is never stored): one account per identity. Changing it later lets "
            "every registered person register once more."
        ),
    )
    registration_ttl_minutes: int = Field(
        default=10, ge=1, le=60, description="How long a registration waits for its SMS code."
    )
    registration_code_attempts: int = Field(
        default=5, ge=1, le=10, description="Wrong codes that void a registration."
    )
    registrations_per_address: int = Field(
        default=10, ge=1, description="Registrations per client address in a period."
    )
    registrations_per_phone: int = Field(
        default=3, ge=1, description="Registrations (codes or notices sent) per number a period."
    )
    registration_period_minutes: int = Field(
        default=60, ge=1, description="The period of the registration limits."
    )
    sms_outbox: Path = Field(
        default=Path("data/sms-outbox.jsonl"),
        description=(
            "Development: the file each text message is appended to as a JSON line "
            "{time, phone, text}, instead of being sent. Not used when a gateway is set."
        ),
    )
    inspection_url: str = Field(
        default="",
        pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$",
        description=(
            "Where the vendor's browser reaches the inspection service (`https://host/inspection`"
            " or `http://127.0.0.1:8003`): the vendor page shows the vendor's warnings and cases "
            "from its `/v1/me/warnings`. On another origin, inspection's STALL_CORS_ORIGINS must "
            "name this service's. Empty: the page does not show them."
        ),
    )
    sms_gateway_url: HttpUrl | None = Field(
        default=None,
        description=(
            "The SMS gateway text messages are POSTed to as JSON {phone, text}; required in "
            "production (the file outbox is for development)."
        ),
    )
    sms_gateway_token: str = Field(
        default="", repr=False, description="Bearer token for the SMS gateway."
    )

    @field_validator("stall_code_signing_key", "token_signing_key")
    @classmethod
    def _seed_is_32_bytes(cls, value: str, info: ValidationInfo) -> str:
        return canonical_seed(value, info.field_name or "seed")

    @model_validator(mode="after")
    def _vendor_key_is_trusted(self) -> AllocationSettings:
        kid = self.vendor_token_key().kid
        if kid not in self.token_keys():
            raise ValueError(
                f"the public key of token_signing_key (kid {kid}) is not in STALL_TOKEN_JWKS: "
                "vendor tokens would be refused; add allocation's /.well-known/jwks.json to it"
            )
        return self

    @model_validator(mode="after")
    def _one_address_cannot_reach_the_number_ceiling(self) -> AllocationSettings:
        # One address's fixed lockout periods touch at most ceil(P/p) + 1 of them in any
        # period P of the per-number ceiling.
        periods = -(-self.login_number_period_minutes // self.login_lockout_minutes) + 1
        alone = self.max_login_failures * periods
        if self.login_failures_per_number <= alone:
            raise ValueError(
                f"login_failures_per_number ({self.login_failures_per_number}) must be more than "
                f"one client address can make alone in its period ({alone}): otherwise one "
                "attacker can lock a number out of every address it has not logged in from"
            )
        return self

    @model_validator(mode="after")
    def _texts_reach_phones_in_production(self) -> AllocationSettings:
        if self.mode is Mode.PROD and self.sms_gateway_url is None:
            raise ValueError(
                "ALLOCATION_SMS_GATEWAY_URL is required in production: the SMS outbox file "
                "(ALLOCATION_SMS_OUTBOX) is for development, and codes must reach phones"
            )
        if self.mode is Mode.PROD and not self.sms_gateway_token:
            raise ValueError("ALLOCATION_SMS_GATEWAY_TOKEN is required in production")
        return self

    def vendor_token_key(self) -> SigningKey:
        """The key that signs vendor tokens."""
        return SigningKey.from_seed(Issuer.ALLOCATION, self.token_signing_key)
