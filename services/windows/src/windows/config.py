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
    check_in_after_minutes: int = 30
    """Minutes after a window's start when its check-in deadline passes."""
    closing_soon_minutes: int = 15
    """Minutes before a window's end when it is announced as closing soon."""
    timeline_days: int = 8
    """Local dates materialised: today and the next seven."""
    late_tolerance_seconds: float = 5.0
    """A boundary handled within this many seconds of its due time is on time."""
    stale_after_hours: int = 24
    """A boundary older than this is recorded but not published."""
    tick_seconds: float = 0.02
    """Real seconds between two looks at what is due (the timers' resolution)."""
    sweep_seconds: float = 30.0
    """Real seconds between two sweeps claiming every market regardless of the due hint."""
