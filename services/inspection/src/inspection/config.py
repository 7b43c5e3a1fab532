"""Settings of the inspection service (environment variables prefixed ``INSPECTION_``)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from stallkit.devkeys import DEV_STALL_CODE_PUBLIC_KEY_B64
from stallkit.settings import CommonSettings


def load_public_key(key_b64: str) -> Ed25519PublicKey:
    """The Ed25519 public key from base64 of its 32 raw bytes; ValueError if it is not one."""
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except binascii.Error as exc:
        raise ValueError("stall_code_public_key is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError("stall_code_public_key must be 32 raw bytes (Ed25519), base64-encoded")
    return Ed25519PublicKey.from_public_bytes(raw)


#: Salt of subject hashes in development (public, so refused in production).
DEV_SUBJECT_SALT = "dev-subject-salt-not-secret"


class InspectionSettings(CommonSettings):
    """The shared settings plus what patrol inspection needs."""

    model_config = SettingsConfigDict(
        env_prefix="INSPECTION_", extra="ignore", populate_by_name=True
    )

    dev_secrets: ClassVar[dict[str, str]] = {
        **CommonSettings.dev_secrets,
        "stall_code_public_key": DEV_STALL_CODE_PUBLIC_KEY_B64,
        "subject_salt": DEV_SUBJECT_SALT,
    }

    token_audience: ClassVar[str] = "inspection"

    service_name: str = "inspection"
    stall_code_public_key: str = Field(
        default="",
        validate_default=True,
        description=(
            "Base64 of the raw 32-byte Ed25519 public key that verifies stall codes; "
            "defaults to the key of allocation's development seed (refused in production)."
        ),
    )
    expected_retention_days: int = Field(
        default=7,
        ge=1,
        description="Days after a window's date that its expected bookings are kept.",
    )

    subject_salt: str = Field(
        default=DEV_SUBJECT_SALT,
        min_length=16,
        description=(
            "Secret salt of the hash that stands for a street vendor's identity number (the "
            "number itself is never stored); refused at its development value in production."
        ),
    )
    repeat_lookback_days: int = Field(
        default=365,
        ge=1,
        description='"1+1": how far back an earlier violation makes a minor one a repeat.',
    )
    offline_scan_max_age_hours: float = Field(
        default=24.0,
        gt=0,
        description="How late a scan queued on an offline phone is still accepted.",
    )
    violations_file: Path | None = Field(
        default=None,
        description="The violation catalogue (JSON); the packaged catalogue if unset.",
    )
    evidence_dir: Path = Field(
        default=Path("data/evidence"),
        description="Folder of content-addressed evidence photos (a volume in production).",
    )
    evidence_max_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Largest photo accepted, in bytes."
    )
    street_report_radius_km: float = Field(
        default=5.0, gt=0, description="How far a street report looks for markets to guide to."
    )
    street_report_markets: int = Field(
        default=5, ge=1, le=20, description="How many markets a street report lists at most."
    )

    @field_validator("stall_code_public_key")
    @classmethod
    def _valid_public_key(cls, value: str) -> str:
        if not value:
            return DEV_STALL_CODE_PUBLIC_KEY_B64
        raw = load_public_key(value).public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()  # canonical, so the dev key is always recognised

    def stall_code_key(self) -> Ed25519PublicKey:
        """The key that verifies stall codes."""
        return load_public_key(self.stall_code_public_key)
