"""Settings of the reporting service (environment variables prefixed ``REPORTING_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stallkit.settings import CommonSettings


class ReportingSettings(CommonSettings):
    """The shared settings plus what aggregates and district feeds need."""

    model_config = SettingsConfigDict(
        env_prefix="REPORTING_", extra="ignore", populate_by_name=True
    )

    token_audience: ClassVar[str] = "reporting"

    service_name: str = "reporting"
    feed_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="How long a district feed keeps its entries (resumable positions).",
    )
