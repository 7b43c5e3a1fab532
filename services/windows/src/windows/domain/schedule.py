"""A market's weekly schedule of windows, as the windows service knows it.

Plain Python: the catalogue events are translated into :class:`ReplaceSchedule` at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from stallkit.clock import MARKET_TZ


@dataclass(frozen=True)
class WindowSpec:
    """One recurring window: ISO weekdays and local start/end times (Asia/Shanghai)."""

    id: str
    name_zh: str
    name_en: str
    days: tuple[int, ...]
    start: time
    end: time

    def runs_on(self, day: date) -> bool:
        """Whether the window runs on ``day`` (by ISO weekday)."""
        return day.isoweekday() in self.days


@dataclass(frozen=True)
class WindowOccurrence:
    """One window on one date, with its start and end as aware datetimes."""

    window_id: str
    date: date
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class MarketSchedule:
    """The schedule of one market as of the catalogue change that last set it."""

    market_id: str
    district: str | None
    windows: tuple[WindowSpec, ...]
    as_of: datetime

    def occurrences_on(self, day: date) -> list[WindowOccurrence]:
        """The windows that run on ``day``, earliest first."""
        found = [
            WindowOccurrence(
                window_id=w.id,
                date=day,
                starts_at=datetime.combine(day, w.start, tzinfo=MARKET_TZ),
                ends_at=datetime.combine(day, w.end, tzinfo=MARKET_TZ),
            )
            for w in self.windows
            if w.runs_on(day)
        ]
        return sorted(found, key=lambda o: o.starts_at)

    def next_occurrences(self, now: datetime, days: int = 7) -> list[WindowOccurrence]:
        """Occurrences that have not ended by ``now``, over the next ``days`` local dates."""
        today = now.astimezone(MARKET_TZ).date()
        upcoming: list[WindowOccurrence] = []
        for offset in range(days):
            upcoming += [
                o for o in self.occurrences_on(today + timedelta(days=offset)) if o.ends_at > now
            ]
        return upcoming


@dataclass(frozen=True)
class ReplaceSchedule:
    """Command: the catalogue says this market's schedule is now ``windows``.

    ``district`` is None when the change did not say (a schedule-only change keeps the known one).
    """

    market_id: str
    district: str | None
    windows: tuple[WindowSpec, ...]
    as_of: datetime


def apply_schedule(
    current: MarketSchedule | None, command: ReplaceSchedule
) -> MarketSchedule | None:
    """The schedule after ``command``, or None when the command is older than what is known.

    Catalogue events of one market arrive in order, but a replayed or re-published old change
    must not roll the schedule back: the newest change (by event time) wins.
    """
    if current is None:
        return MarketSchedule(
            market_id=command.market_id,
            district=command.district,
            windows=command.windows,
            as_of=command.as_of,
        )
    if command.as_of < current.as_of:
        return None
    return replace(
        current,
        district=command.district or current.district,
        windows=command.windows,
        as_of=command.as_of,
    )
