"""District feeds: every event as a short entry a district office can follow (type, market,
time, a zh/en summary, the event itself), in a per-district ordered log.

Plain Python: the log's storage is an adapter; this module says what an entry says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

#: The feed of every district, for administrators.
ALL = "all"


@dataclass(frozen=True)
class NewEntry:
    """An event as its district's feed (and ``all``) tells it, before the log gives it an id."""

    event_id: str
    type: str
    market_id: str
    district: str | None
    time: dt.datetime
    summary_zh: str
    summary_en: str
    event: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class FeedEntry(NewEntry):
    """One entry of a district's log; ``id`` orders the log and resumes it."""

    id: str

    def as_json(self) -> dict[str, Any]:
        """The entry as it is sent (SSE data, webhook body)."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "type": self.type,
            "market_id": self.market_id,
            "district": self.district,
            "time": self.time.isoformat(),
            "summary_zh": self.summary_zh,
            "summary_en": self.summary_en,
            "event": self.event,
        }
