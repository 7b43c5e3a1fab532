"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"


class Mode(StrEnum):
    """Development mode allows the built-in development secrets; production refuses them."""

    DEV = "dev"
    PROD = "prod"


def _env(name: str) -> Any:
    return AliasChoices(name, name.lower())


class CommonSettings(BaseSettings):
    """Settings read by all services from the same environment variables."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    #: Secrets whose development value must not be used outside dev mode.
    dev_secrets: ClassVar[dict[str, str]] = {"jwt_secret": DEV_JWT_SECRET}

    service_name: str = "service"
    mode: Mode = Field(default=Mode.DEV, validation_alias=_env("STALL_MODE"))
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    redis_url: str = Field(default="redis://127.0.0.1:16379/0", validation_alias=_env("REDIS_URL"))
    redis_max_connections: int = Field(
        default=256, ge=2, validation_alias=_env("STALL_REDIS_MAX_CONNECTIONS")
    )
    topic_prefix: str = Field(
        default="",
        validation_alias=_env("STALL_TOPIC_PREFIX"),
        description="Prefix for every topic name (test isolation); empty in production.",
    )
    redis_prefix: str = Field(
        default="",
        validation_alias=_env("STALL_REDIS_PREFIX"),
        description="Prefix for every Redis key (test isolation); empty in production.",
    )
    jwt_secret: str = Field(default=DEV_JWT_SECRET, validation_alias=_env("STALL_JWT_SECRET"))
    jwt_ttl_seconds: int = Field(default=8 * 3600, validation_alias=_env("STALL_JWT_TTL_SECONDS"))
    clock_offset_seconds: float = Field(
        default=0.0, validation_alias=_env("STALL_CLOCK_OFFSET_SECONDS")
    )
    clock_speed: float = Field(default=1.0, gt=0, validation_alias=_env("STALL_CLOCK_SPEED"))
    clock_anchor: float | None = Field(
        default=None,
        validation_alias=_env("STALL_CLOCK_ANCHOR"),
        description="Unix time at which sped-up time starts; all services must share it.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=10, ge=1, validation_alias=_env("STALL_KAFKA_FETCH_MAX_WAIT_MS")
    )
    log_level: str = Field(default="INFO", validation_alias=_env("STALL_LOG_LEVEL"))

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> CommonSettings:
        if self.mode is Mode.PROD:
            for field, dev_value in self.dev_secrets.items():
                if getattr(self, field) == dev_value:
                    raise ValueError(
                        f"{field} still has its development value; set it in production"
                    )
            if len(self.jwt_secret) < 32:
                raise ValueError("jwt_secret must be at least 32 characters in production")
        return self

    def topic(self, name: str) -> str:
        """Full topic name with this deployment's prefix."""
        return f"{self.topic_prefix}{name}"

    def key(self, *parts: str) -> str:
        """Redis key from parts, under this deployment's prefix."""
        return self.redis_prefix + ":".join(parts)
