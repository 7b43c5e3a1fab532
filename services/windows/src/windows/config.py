"""Settings of the windows service (environment variables prefixed ``WINDOWS_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from stallkit.settings import CommonSettings


class WindowsSettings(CommonSettings):
    """The shared settings plus what the time-window service needs."""

    model_config = SettingsConfigDict(env_prefix="WINDOWS_", extra="ignore", populate_by_name=True)

    token_audience: ClassVar[str] = "windows"

    service_name: str = "windows"
