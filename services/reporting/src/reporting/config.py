"""Settings of the reporting service (environment variables prefixed ``REPORTING_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from stallkit.settings import CommonSettings


class ReportingSettings(CommonSettings):
    """The shared settings plus what aggregates and district feeds need."""

    model_config = SettingsConfigDict(
        env_prefix="REPORTING_", extra="ignore", populate_by_name=True
    )

    token_audience: ClassVar[str] = "reporting"

    service_name: str = "reporting"
