"""Event counts: every event seen, by type, overall and per market and district.

Plain Python: events are translated into :class:`CountedEvent` at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ScopeKind(StrEnum):
    """What a count is over."""

    ALL = "all"
    MARKET = "market"
    DISTRICT = "district"


@dataclass(frozen=True)
class Scope:
    """One set of counters: all events, one market's, or one district's."""

    kind: ScopeKind
    id: str = ""


ALL = Scope(ScopeKind.ALL)


@dataclass(frozen=True)
class CountedEvent:
    """The facts about an event that counting needs."""

    event_id: str
    event_type: str
    market_id: str
    district: str | None


def scopes_of(event: CountedEvent) -> list[Scope]:
    """The counters an event adds one to: all, its market, and its district when known."""
    scopes = [ALL, Scope(ScopeKind.MARKET, event.market_id)]
    if event.district:
        scopes.append(Scope(ScopeKind.DISTRICT, event.district))
    return scopes


@dataclass(frozen=True)
class EventStats:
    """Counts by full event type in one scope."""

    events: dict[str, int]

    @property
    def total(self) -> int:
        """All events in the scope."""
        return sum(self.events.values())
