"""Staff tokens: the staff issuing key (``STALL_STAFF_SIGNING_KEY``), read by stallctl only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stallkit.auth import AUDIENCES, Role, mint_token
from stallkit.clock import Clock
from stallkit.keys import Issuer, SigningKey, canonical_seed
from stallkit.settings import Mode

#: base64 of b"dev-only-stallctl-staff-seed-32b": the development staff seed (public knowledge;
#: its public key is in stallkit.devkeys, trusted in development mode, refused in production).
DEV_STAFF_SEED_B64 = "ZGV2LW9ubHktc3RhbGxjdGwtc3RhZmYtc2VlZC0zMmI="
STAFF_TOKEN_TTL_SECONDS = 8 * 3600


def _env(name: str) -> Any:
    return AliasChoices(name, name.lower())


class StaffSettings(BaseSettings):
    """What ``stallctl`` needs to issue staff tokens: the mode, the key and the clock."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    mode: Mode = Field(default=Mode.DEV, validation_alias=_env("STALL_MODE"))
    staff_signing_key: str = Field(
        default=DEV_STAFF_SEED_B64,
        repr=False,
        validation_alias=_env("STALL_STAFF_SIGNING_KEY"),
        description="base64 of the 32-byte Ed25519 seed that signs staff tokens.",
    )
    clock_offset_seconds: float = Field(
        default=0.0, validation_alias=_env("STALL_CLOCK_OFFSET_SECONDS")
    )
    clock_speed: float = Field(default=1.0, gt=0, validation_alias=_env("STALL_CLOCK_SPEED"))
    clock_anchor: float | None = Field(default=None, validation_alias=_env("STALL_CLOCK_ANCHOR"))

    @field_validator("staff_signing_key")
    @classmethod
    def _seed_is_32_bytes(cls, value: str) -> str:
        return canonical_seed(value, "STALL_STAFF_SIGNING_KEY")

    @model_validator(mode="after")
    def _refuse_dev_values_in_prod(self) -> StaffSettings:
        if self.mode is Mode.PROD:
            if self.staff_signing_key == DEV_STAFF_SEED_B64:
                raise ValueError(
                    "STALL_STAFF_SIGNING_KEY is not set (the development key is refused in "
                    "production): generate one with `stallctl keygen staff-tokens`"
                )
            if self.clock_offset_seconds or self.clock_speed != 1 or self.clock_anchor is not None:
                raise ValueError("the STALL_CLOCK_* settings are for development only")
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StaffSettings:
        """The settings of an environment other than this process's."""
        return cls.model_validate(
            {k.lower(): v for k, v in environ.items() if k.startswith("STALL_")}
        )

    def signing_key(self) -> SigningKey:
        """The staff issuing key."""
        return SigningKey.from_seed(Issuer.STAFF, self.staff_signing_key)

    def clock(self) -> Clock:
        """The service clock these settings describe (so tokens fit the services' time)."""
        return Clock(
            offset_seconds=self.clock_offset_seconds,
            speed=self.clock_speed,
            anchor=self.clock_anchor,
        )


def dev_staff_key() -> SigningKey:
    """The development staff key (what the embedded runtime signs with by default)."""
    return SigningKey.from_seed(Issuer.STAFF, DEV_STAFF_SEED_B64)


def staff_token(
    key: SigningKey,
    *,
    role: Role,
    sub: str,
    now: datetime,
    ttl_seconds: int = STAFF_TOKEN_TTL_SECONDS,
    district: str | None = None,
    audience: Sequence[str] = AUDIENCES,
) -> str:
    """A staff token (patrol, district or admin) for ``audience`` (every service by default)."""
    return mint_token(
        key,
        sub=sub,
        role=role,
        now=now,
        ttl_seconds=ttl_seconds,
        audience=audience,
        district=district,
    )
