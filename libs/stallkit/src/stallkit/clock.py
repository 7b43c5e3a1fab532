"""One clock for all services: real time, offset and optionally sped up."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

MARKET_TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    """Service time = anchor + (real - anchor) * speed + offset."""

    def __init__(
        self, *, offset_seconds: float = 0.0, speed: float = 1.0, anchor: float | None = None
    ):
        self.offset_seconds = offset_seconds
        self.speed = speed
        self.anchor = time.time() if anchor is None else anchor

    def timestamp(self) -> float:
        """Current service time as Unix seconds."""
        real = time.time()
        return self.anchor + (real - self.anchor) * self.speed + self.offset_seconds

    def now(self) -> datetime:
        """Current service time, timezone-aware UTC."""
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def local_now(self) -> datetime:
        """Current service time in Asia/Shanghai."""
        return self.now().astimezone(MARKET_TZ)

    def today(self) -> date:
        """Today's date in Asia/Shanghai."""
        return self.local_now().date()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (tests and demos)."""
        self.offset_seconds += seconds

    def real_seconds_for(self, service_seconds: float) -> float:
        """How long to really wait for ``service_seconds`` of service time to pass."""
        return service_seconds / self.speed


def local_datetime(day: date, minute_of_day: int) -> datetime:
    """The Asia/Shanghai datetime ``minute_of_day`` minutes after midnight of ``day``."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=MARKET_TZ)
    return midnight.replace(hour=minute_of_day // 60, minute=minute_of_day % 60)
