"""The district feeds' log: one Redis stream per district (and ``all``), ordered, resumable.

An entry's id is its stream id (``<ms>-<seq>``): stable, ordered, and a position a client resumes
from. An event is appended once (its id is remembered for the retention window), to its
district's stream and to ``all``, in one script. Streams are trimmed to the retention window on
append; the id of the last entry trimmed is kept, so a client resuming from before it is told
its position expired instead of silently missing entries.

Every key shares the ``{feed}`` hash tag: one script touches a district's stream and ``all``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from reporting.domain.feed import ALL, FeedEntry, NewEntry
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings

# Appends events, in order, each once (its id is remembered for the seen ttl) to its district's
# feed and to 'all', then trims the streams appended to. KEYS: the entries' seen marks, then per
# feed (stream, trimmed), 'all' first. ARGV: seen ttl (s), retention (ms), then per entry the
# number of its district's feed (0: none) and its fields' values in the order of FIELDS.
# Returns per entry its new ids (district's, then all's), none when it was seen before.
_APPEND = """
local names = {%s}
local per = #names + 1
local n = (#ARGV - 2) / per
local touched = {}
local ids = {}
for e = 1, n do
  local a = 3 + (e - 1) * per
  ids[e] = {}
  if redis.call('SET', KEYS[e], '1', 'NX', 'EX', ARGV[1]) then
    local fields = {}
    for f = 1, #names do
      fields[#fields + 1] = names[f]
      fields[#fields + 1] = ARGV[a + f]
    end
    local feed = tonumber(ARGV[a])
    if feed > 0 then
      ids[e][1] = redis.call('XADD', KEYS[n + 2 * feed - 1], '*', unpack(fields))
      touched[feed] = true
    end
    ids[e][#ids[e] + 1] = redis.call('XADD', KEYS[n + 1], '*', unpack(fields))
    touched[1] = true
  end
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local min_ms = now_ms - tonumber(ARGV[2])
local min_id = string.format('%%d', min_ms)
for feed in pairs(touched) do
  local stream, trimmed = KEYS[n + 2 * feed - 1], KEYS[n + 2 * feed]
  -- most appends have nothing to trim: look at the oldest entry before searching for the last
  -- expired one
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if tonumber(string.match(oldest[1][1], '^(%%d+)')) < min_ms then
    local last_old = redis.call('XREVRANGE', stream, '(' .. min_id .. '-0', '-', 'COUNT', 1)
    if #last_old > 0 then
      redis.call('SET', trimmed, last_old[1][1])
      redis.call('XTRIM', stream, 'MINID', min_id .. '-0')
    end
  end
end
return ids
"""
#: The fields of an entry in the stream, in this order.
FIELDS = (
    "event_id", "type", "market_id", "district", "time", "summary_zh", "summary_en", "event"
)  # fmt: skip
_APPEND %= ", ".join(f"'{name}'" for name in FIELDS)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def id_before(a: str, b: str) -> bool:
    """Whether stream id ``a`` comes before ``b``."""
    return _id_key(a) < _id_key(b)


def valid_id(entry_id: str) -> bool:
    """Whether ``entry_id`` is a stream id (``<ms>-<seq>``)."""
    ms, dash, seq = entry_id.partition("-")
    return ms.isdigit() and dash == "-" and seq.isdigit() and len(entry_id) <= 41


def _values(entry: NewEntry) -> list[str]:
    """The stream fields' values of an entry, in the order of :data:`FIELDS`."""
    return [
        entry.event_id,
        entry.type,
        entry.market_id,
        entry.district or "",
        entry.time.isoformat(),
        entry.summary_zh,
        entry.summary_en,
        # Compact UTF-8 JSON, as json.dumps(..., ensure_ascii=False) with tight separators
        # would write it, several times faster.
        to_json(entry.event).decode(),
    ]


@dataclass(frozen=True)
class Appended:
    """What an append did: the new entry ids by feed, empty when the event was seen before."""

    ids: dict[str, str]


class FeedLog:
    """The per-district logs in Redis."""

    def __init__(self, redis: RedisClient, settings: CommonSettings, retention: dt.timedelta):
        self.redis = redis
        self.settings = settings
        self.retention = retention
        self._append = redis.register_script(_APPEND)

    def _key(self, *parts: str) -> str:
        return self.settings.key("rep", "{feed}", *parts)

    def stream(self, feed: str) -> str:
        """The stream key of a feed (a district, or ``all``)."""
        return self._key("log", feed)

    async def append(
        self,
        *,
        event_id: str,
        type: str,
        market_id: str,
        district: str | None,
        time: dt.datetime,
        summary_zh: str,
        summary_en: str,
        event: dict[str, Any],
    ) -> Appended:
        """Append an event to its district's feed and to ``all``, once."""
        entry = NewEntry(event_id, type, market_id, district, time, summary_zh, summary_en, event)
        [ids] = await self._append_entries([entry])
        feeds = [ALL] if district is None else [district, ALL]
        return Appended(dict(zip(feeds, ids, strict=False)))

    async def append_many(self, entries: Sequence[NewEntry]) -> int:
        """Append each event as :meth:`append` does, in order, in one script call; how many
        were appended (not seen before)."""
        return sum(1 for ids in await self._append_entries(entries) if ids)

    async def _append_entries(self, entries: Sequence[NewEntry]) -> list[list[str]]:
        """Per entry, the ids it was appended under (its district's, then all's); none when it
        was appended before."""
        if not entries:
            return []
        feeds = [ALL]
        numbers = {ALL: 1}
        args: list[Any] = [self._seen_ttl(), self._retention_ms()]
        for entry in entries:
            number = 0
            if entry.district is not None:
                number = numbers.get(entry.district, 0)
                if not number:
                    feeds.append(entry.district)
                    number = numbers[entry.district] = len(feeds)
            args.append(number)
            args += _values(entry)
        keys = [self._key("seen", entry.event_id) for entry in entries]
        for feed in feeds:
            keys += [self.stream(feed), self._key("trimmed", feed)]
        appended = await self._append(keys=keys, args=args)
        return [[i.decode() for i in ids] for ids in appended]

    def _seen_ttl(self) -> int:
        return max(1, int(self.retention.total_seconds()))

    def _retention_ms(self) -> int:
        return int(self.retention / dt.timedelta(milliseconds=1))

    @staticmethod
    def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> FeedEntry:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        return FeedEntry(
            id=entry_id.decode(),
            event_id=f["event_id"],
            type=f["type"],
            market_id=f["market_id"],
            district=f["district"] or None,
            time=dt.datetime.fromisoformat(f["time"]),
            summary_zh=f["summary_zh"],
            summary_en=f["summary_en"],
            event=json.loads(f["event"]),
        )

    async def read(self, feed: str, after: str | None, count: int = 500) -> list[FeedEntry]:
        """Up to ``count`` entries after position ``after`` (from the start if None), in order."""
        low = "-" if after is None else f"({after}"
        raw = await self.redis.xrange(self.stream(feed), min=low, max="+", count=count)
        return [self._entry(i, f) for i, f in raw]

    async def wait(self, feed: str, after: str, block_ms: int, count: int = 500) -> list[FeedEntry]:
        """Entries after ``after``, waiting up to ``block_ms`` for the first (XREAD BLOCK)."""
        raw = await self.redis.xread({self.stream(feed): after}, count=count, block=block_ms)
        if not raw:
            return []
        return [self._entry(i, f) for i, f in raw[0][1]]

    async def last_id(self, feed: str) -> str:
        """The id of the feed's newest entry, ``0-0`` when it has none."""
        raw = await self.redis.xrevrange(self.stream(feed), count=1)
        return raw[0][0].decode() if raw else "0-0"

    async def expired(self, feed: str, after: str) -> bool:
        """Whether entries after position ``after`` were trimmed away (the client missed some)."""
        trimmed = await self.redis.get(self._key("trimmed", feed))
        return trimmed is not None and id_before(after, trimmed.decode())
