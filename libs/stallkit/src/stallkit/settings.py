"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stallkit.devkeys import DEV_TOKEN_PUBLIC_KEYS, dev_token_jwks
from stallkit.keys import TokenKeys
from stallkit.redis_client import is_cluster_url, parse_cluster_url

RETIRED_JWT_SECRET_MESSAGE = (
    "STALL_JWT_SECRET is no longer used (tokens are signed with Ed25519 keys by their issuers "
    "and verified with the public keys in STALL_TOKEN_JWKS)"
)


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
    dev_secrets: ClassVar[dict[str, str]] = {}
    #: The name a token's ``aud`` must list for this service to accept it.
    token_audience: ClassVar[str] = "service"

    service_name: str = "service"
    mode: Mode = Field(default=Mode.DEV, validation_alias=_env("STALL_MODE"))
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:16379/0",
        validation_alias=_env("REDIS_URL"),
        description=(
            "One redis-server (`redis://[user:password@]host:port/db`, `rediss://` with TLS), "
            "or a Redis Cluster: `redis+cluster://[user:password@]host:port[,host:port...]/` "
            "(`rediss+cluster://` with TLS; database 0 only), whose other nodes are discovered."
        ),
    )
    redis_max_connections: int = Field(
        default=256,
        ge=2,
        validation_alias=_env("STALL_REDIS_MAX_CONNECTIONS"),
        description="Connections to redis-server at most (per node of a Redis Cluster).",
    )
    topic_prefix: str = Field(
        default="",
        validation_alias=_env("STALL_TOPIC_PREFIX"),
        description="Prefix for every topic name (test isolation); empty in production.",
    )
    redis_prefix: str = Field(
        default="",
        validation_alias=_env("STALL_REDIS_PREFIX"),
        description=(
            "Prefix for every Redis key (test isolation); empty in production. It must hold no "
            "`{` or `}`: the keys' own hash tags group them for a Redis Cluster."
        ),
    )
    token_jwks: str = Field(
        default="",
        validation_alias=_env("STALL_TOKEN_JWKS"),
        description=(
            "JWKS (JSON) of the public keys that verify bearer tokens: allocation's vendor-token "
            "key and the staff key of `stallctl`. Development mode defaults to the dev keys."
        ),
    )
    token_jwks_file: Path | None = Field(
        default=None,
        validation_alias=_env("STALL_TOKEN_JWKS_FILE"),
        description="A file holding that JWKS, instead of STALL_TOKEN_JWKS.",
    )
    retired_jwt_variable_set: bool = Field(
        default=False,
        validation_alias=_env("STALL_JWT_SECRET"),
        exclude=True,
        description="Whether the retired STALL_JWT_SECRET is set (its value is never kept).",
    )
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
    cors_origins: str = Field(
        default="",
        validation_alias=_env("STALL_CORS_ORIGINS"),
        description=(
            "Comma-separated origins (`https://host[:port]`) whose pages may call this service "
            "from the browser: the vendor page (allocation's origin) reads the vendor's warnings "
            "from inspection. Empty: none (behind one reverse proxy, every page is same-origin)."
        ),
    )

    def cors_origin_list(self) -> list[str]:
        """:attr:`cors_origins` as a list, each without a trailing slash."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("redis_url")
    @classmethod
    def _check_cluster_url(cls, value: str) -> str:
        if is_cluster_url(value):
            parse_cluster_url(value)  # refuse a malformed cluster URL at start-up
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _no_hash_tag_in_prefix(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("STALL_REDIS_PREFIX must not hold { or } (it would be the hash tag)")
        return value

    @field_validator("retired_jwt_variable_set", mode="before")
    @classmethod
    def _forget_the_secret(cls, value: Any) -> bool:
        return bool(value.strip()) if isinstance(value, str) else bool(value)

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> CommonSettings:
        keys = self.token_keys()  # a JWKS that does not parse is refused in every mode
        if self.mode is Mode.PROD:
            for field, dev_value in self.dev_secrets.items():
                if getattr(self, field) == dev_value:
                    raise ValueError(
                        f"{field} still has its development value; set it in production"
                    )
            if self.retired_jwt_variable_set:
                raise ValueError(f"{RETIRED_JWT_SECRET_MESSAGE}: remove it")
            if not self.token_jwks and self.token_jwks_file is None:
                raise ValueError(
                    "STALL_TOKEN_JWKS (or STALL_TOKEN_JWKS_FILE) is required in production"
                )
            dev = sorted(k.kid for k in keys.values() if k.x in DEV_TOKEN_PUBLIC_KEYS)
            if dev:
                raise ValueError(
                    f"the token JWKS trusts development keys ({', '.join(dev)}), whose private "
                    "halves are public: use keys from `stallctl keygen` in production"
                )
            if self.clock_offset_seconds or self.clock_speed != 1 or self.clock_anchor is not None:
                raise ValueError(
                    "STALL_CLOCK_OFFSET_SECONDS, STALL_CLOCK_SPEED and STALL_CLOCK_ANCHOR are for "
                    "development and demos; production runs on real time"
                )
        return self

    def token_keys(self) -> TokenKeys:
        """The public keys that verify tokens (the development keys by default in dev mode)."""
        if self.token_jwks and self.token_jwks_file is not None:
            raise ValueError("set STALL_TOKEN_JWKS or STALL_TOKEN_JWKS_FILE, not both")
        if self.token_jwks_file is not None:
            return TokenKeys.from_file(self.token_jwks_file)
        if self.token_jwks:
            return TokenKeys.parse(self.token_jwks)
        return TokenKeys.parse(dev_token_jwks())

    def topic(self, name: str) -> str:
        """Full topic name with this deployment's prefix."""
        return f"{self.topic_prefix}{name}"

    def key(self, *parts: str) -> str:
        """Redis key from parts, under this deployment's prefix."""
        return self.redis_prefix + ":".join(parts)
