"""The double-limit booking rules as pure functions of the policy and the clock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from allocation.domain.errors import Rejected
from contracts.catalogue import Market, MarketWindow
from stallkit.clock import local_datetime


@dataclass(frozen=True)
class Policy:
    """Rule parameters (from settings)."""

    weekly_cap: int = 5
    priority_horizon_days: int = 7
    standard_horizon_days: int = 3
    priority_hold_share: float = 0.30
    priority_hold_release_minute: int = 18 * 60
    free_cancel_seconds: float = 2 * 3600
    check_in_before_seconds: int = 30 * 60
    check_in_after_seconds: int = 30 * 60
    no_show_limit: int = 3
    no_show_period_seconds: int = 30 * 86400
    no_show_suspension_seconds: int = 7 * 86400
    #: Windows are applied for until their draw, then first come, first served.
    lottery: bool = True
    draw_days_before: int = 2
    draw_minute: int = 20 * 60


@dataclass(frozen=True)
class WindowOccurrence:
    """A market window on a given date, with its instants."""

    market_id: str
    window: MarketWindow
    date: date
    starts_at: datetime
    ends_at: datetime

    @property
    def iso_week(self) -> str:
        """ISO week key, e.g. ``2026-W48``, for the weekly cap."""
        return iso_week(self.date)


def iso_week(day: date) -> str:
    """ISO week key of ``day``, e.g. ``2026-W48``: the weekly cap counts bookings per key."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def occurrence(market: Market, window_id: str, day: date) -> WindowOccurrence:
    """The window's occurrence on ``day``, or ``window_not_found``."""
    window = market.window(window_id)
    if window is None or day.isoweekday() not in window.days:
        raise Rejected("window_not_found", f"{market.id} has no window {window_id!r} on {day}")
    return WindowOccurrence(
        market_id=market.id,
        window=window,
        date=day,
        starts_at=local_datetime(day, window.start_minute),
        ends_at=local_datetime(day, window.end_minute),
    )


def booking_opens_at(day: date, horizon_days: int) -> datetime:
    """Local midnight of D-``horizon_days``: when booking for ``day`` opens."""
    return local_datetime(day - timedelta(days=horizon_days), 0)


def draw_at(policy: Policy, day: date) -> datetime:
    """When the draw of ``day``'s windows runs and their applications close (D-2 20:00)."""
    return local_datetime(day - timedelta(days=policy.draw_days_before), policy.draw_minute)


def priority_hold_ends_at(policy: Policy, day: date) -> datetime:
    """When the priority hold of ``day``'s windows ends (D-1 at the release time)."""
    return local_datetime(day - timedelta(days=1), policy.priority_hold_release_minute)


def held_stall_count(policy: Policy, total_stalls: int) -> int:
    """How many of a window's stalls are held for priority groups."""
    return math.floor(total_stalls * policy.priority_hold_share + 1e-9)


def cancellation_is_late(policy: Policy, starts_at: datetime, now: datetime) -> bool:
    """Cancelling now counts as a no-show (after start - free-cancel period)."""
    return now > starts_at - timedelta(seconds=policy.free_cancel_seconds)


def check_in_window(
    policy: Policy, starts_at: datetime, ends_at: datetime, booked_at: datetime
) -> tuple[datetime, datetime]:
    """When check-in is allowed: around the start, or 30 min from a late same-day booking."""
    opens = starts_at - timedelta(seconds=policy.check_in_before_seconds)
    closes = starts_at + timedelta(seconds=policy.check_in_after_seconds)
    if booked_at > starts_at:
        closes = min(
            ends_at, max(closes, booked_at + timedelta(seconds=policy.check_in_after_seconds))
        )
    return opens, closes


def no_show_period_start(policy: Policy, now: datetime) -> datetime:
    """Start of the rolling period whose no-shows count toward a suspension."""
    return now - timedelta(seconds=policy.no_show_period_seconds)


def no_show_suspension(policy: Policy, no_shows_in_period: int, now: datetime) -> datetime | None:
    """Until when a no-show that makes ``no_shows_in_period`` suspends the vendor, or ``None``."""
    if no_shows_in_period < policy.no_show_limit:
        return None
    return now + timedelta(seconds=policy.no_show_suspension_seconds)
