"""Where the reporting facts live: Redis hashes, every write a plain set (idempotent).

- the catalogue, in one slot (``rep:{cat}:...``): markets and their schedules, each stored with
  the time of the event that set it (an older event never overwrites a newer one); stalls per
  market; suspensions per market (declared, and lifted from a date);
- per market and local day (``rep:{m:<market>}:d:<date>``), one hash of fields named by what
  they are about: ``b:<booking>`` (created: vendor, priority, window, times), ``x:<booking>``
  (cancelled), ``i:<booking>`` (checked in), ``n:<booking>`` (no-show), ``u:<booking>`` (ended
  by a suspension), ``s:<scan>``, ``w:<warning>``, ``c:<case>`` (opened), ``k:<case>``
  (closed), ``cw:<window>`` (withdrawn), ``dr:<window>`` (the window's draw: applicants,
  winners, stalls);
- per case (``rep:{m:<market>}:case:<case>``): ``o`` (opened), ``h:<ms>`` (handled),
  ``r:<ms>`` (sent back), ``k`` (closed), ``e:<event id>`` (evaluated).

Day and case hashes expire after the report retention.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from pydantic_core import to_json
from redis.commands.core import AsyncScript

from reporting.domain.figures import (
    BookingFacts,
    CaseFacts,
    DrawFacts,
    MarketDayFacts,
    MarketFacts,
    ScanFacts,
    WindowFacts,
)
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings

# Sets ``field`` to ``value`` unless what is there was set by a later event (ARGV[2], ms).
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local at = tonumber(string.match(current, '^(%d+)|'))
  if at and at > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
return 1
"""


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stamped(raw: bytes | str) -> Any:
    """The value of a ``<ms>|<json>`` field."""
    return json.loads(_text(raw).split("|", 1)[1])


class FactWrites:
    """The day and case facts a batch of events sets, by hash; a fact set twice keeps the
    last value, as setting them one by one would."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, str]] = {}

    def set(self, key: str, name: str, text: str) -> None:
        """Set field ``name`` of hash ``key``."""
        self.by_key.setdefault(key, {})[name] = text


class FactsStore:
    """Reads and writes the facts reports are computed from."""

    def __init__(self, redis: RedisClient, settings: CommonSettings, retention_days: int):
        self.redis = redis
        self.settings = settings
        self.ttl_seconds = int(retention_days * 24 * 3600)
        self._script: AsyncScript | None = None

    async def _set_if_newer(self, key: str, name: str, at: datetime, value: str) -> None:
        if self._script is None:
            self._script = self.redis.register_script(_SET_IF_NEWER)
        await self._script(keys=[key], args=[name, _ms(at), value])

    # -- keys ---------------------------------------------------------------------------------

    def _cat(self, *parts: str) -> str:
        return self.settings.key("rep", "{cat}", *parts)

    def day_key(self, market_id: str, day: date) -> str:
        """The hash of one market's facts on one local day."""
        return self.settings.key("rep", "{m:" + market_id + "}", "d", day.isoformat())

    def case_key(self, market_id: str, case_id: str) -> str:
        """The hash of one case's facts."""
        return self.settings.key("rep", "{m:" + market_id + "}", "case", case_id)

    # -- catalogue ----------------------------------------------------------------------------

    async def put_market(
        self, market_id: str, at: datetime, *, district: str, name_zh: str, name_en: str
    ) -> None:
        """A market's district and names, as of ``at``."""
        value = json.dumps({"district": district, "zh": name_zh, "en": name_en})
        await self._set_if_newer(self._cat("markets"), market_id, at, value)

    async def put_schedule(
        self, market_id: str, at: datetime, windows: Sequence[WindowFacts]
    ) -> None:
        """A market's weekly windows, as of ``at``."""
        value = json.dumps(
            [[w.window_id, sorted(w.days), w.start_minute, w.end_minute] for w in windows]
        )
        await self._set_if_newer(self._cat("schedules"), market_id, at, value)

    async def put_stall(self, market_id: str, stall_id: str, at: datetime, active: bool) -> None:
        """Whether a stall is active, as of ``at``."""
        await self._set_if_newer(self._cat("stalls", market_id), stall_id, at, json.dumps(active))

    async def put_suspension(
        self, market_id: str, suspension_id: str, first: date, last: date
    ) -> None:
        """A declared suspension's dates."""
        await self.redis.hset(
            self._cat("suspensions", market_id),
            suspension_id,
            f"{first.isoformat()}|{last.isoformat()}",
        )

    async def lift_suspension(self, market_id: str, suspension_id: str, reopened: date) -> None:
        """A suspension lifted: its dates from ``reopened`` on are open again."""
        await self.redis.hset(
            self._cat("suspensions", market_id), f"{suspension_id}:lifted", reopened.isoformat()
        )

    async def markets(self) -> dict[str, MarketFacts]:
        """Every market the catalogue told of, with its schedule, stalls and suspensions."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._cat("markets"))
            pipe.hgetall(self._cat("schedules"))
            names, schedules = await pipe.execute()
        ids = sorted(_text(k) for k in names)
        async with self.redis.pipeline(transaction=False) as pipe:
            for market_id in ids:
                pipe.hvals(self._cat("stalls", market_id))
                pipe.hgetall(self._cat("suspensions", market_id))
            replies = await pipe.execute()
        schedule_of = {_text(k): _stamped(v) for k, v in schedules.items()}
        out: dict[str, MarketFacts] = {}
        for n, market_id in enumerate(ids):
            info = _stamped(names[market_id.encode()])
            stalls, suspensions = replies[2 * n], replies[2 * n + 1]
            out[market_id] = MarketFacts(
                market_id=market_id,
                district=info["district"],
                name_zh=info["zh"],
                name_en=info["en"],
                windows=tuple(
                    WindowFacts(w, frozenset(days), start, end)
                    for w, days, start, end in schedule_of.get(market_id, [])
                ),
                active_stalls=sum(1 for v in stalls if _stamped(v) is True),
                suspended=_suspended_ranges({_text(k): _text(v) for k, v in suspensions.items()}),
            )
        return out

    # -- day and case facts -------------------------------------------------------------------

    def put_day(self, writes: FactWrites, market_id: str, day: date, name: str, value: Any) -> None:
        """Stage in ``writes`` one fact of a market-day (written by :meth:`write`)."""
        writes.set(self.day_key(market_id, day), name, to_json(value).decode())

    def put_case(
        self, writes: FactWrites, market_id: str, case_id: str, name: str, value: Any
    ) -> None:
        """Stage in ``writes`` one fact of a case (as :meth:`put_day`)."""
        writes.set(self.case_key(market_id, case_id), name, to_json(value).decode())

    async def write(self, writes: FactWrites) -> None:
        """Write the staged facts in one round trip: one HSET and one EXPIRE per hash.

        Not a transaction: a batch that failed part way is applied again whole (every fact is
        set, never added to, so setting it again changes nothing).
        """
        if not writes.by_key:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, fields in writes.by_key.items():
                pipe.hset(key, mapping=fields)
                pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
        writes.by_key.clear()

    async def days(
        self, slots: Sequence[tuple[str, date]], *, with_cases: bool = True
    ) -> tuple[dict[tuple[str, date], MarketDayFacts], dict[str, CaseFacts]]:
        """The facts of each (market, day), and (``with_cases``) of the cases opened on them."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for market_id, day in slots:
                pipe.hgetall(self.day_key(market_id, day))
            raws = await pipe.execute() if slots else []
        facts = {slot: _day_facts(raw) for slot, raw in zip(slots, raws, strict=True)}
        if not with_cases:
            return facts, {}
        wanted = [
            (market_id, case_id)
            for (market_id, _), day in facts.items()
            for case_id in day.cases_opened
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for market_id, case_id in wanted:
                pipe.hgetall(self.case_key(market_id, case_id))
            case_raws = await pipe.execute() if wanted else []
        cases = {
            case_id: _case_facts(raw) for (_, case_id), raw in zip(wanted, case_raws, strict=True)
        }
        return facts, cases


def _suspended_ranges(fields: dict[str, str]) -> tuple[tuple[date, date], ...]:
    out = []
    for name, value in fields.items():
        if name.endswith(":lifted"):
            continue
        first, last = (date.fromisoformat(v) for v in value.split("|"))
        lifted = fields.get(f"{name}:lifted")
        if lifted is not None:
            reopened = date.fromisoformat(lifted)
            if reopened <= first:
                continue
            last = min(last, date.fromordinal(reopened.toordinal() - 1))
        out.append((first, last))
    return tuple(sorted(out))


def _day_facts(raw: dict[bytes, bytes]) -> MarketDayFacts:
    out = MarketDayFacts()

    def booking(booking_id: str) -> BookingFacts:
        return out.bookings.setdefault(booking_id, BookingFacts())

    for name_raw, value_raw in raw.items():
        kind, _, ref = _text(name_raw).partition(":")
        value = json.loads(value_raw)
        if kind == "b":
            b = booking(ref)
            b.created, b.priority, b.window_id = True, bool(value["p"]), value["w"]
            b.vendor_id = value.get("v", "")
            b.starts_at, b.ends_at = float(value["s"]), float(value["e"])
        elif kind == "x":
            b = booking(ref)
            b.cancelled, b.late = True, bool(value)
        elif kind == "i":
            booking(ref).checked_in_at = float(value)
        elif kind == "n":
            booking(ref).no_show = True
        elif kind == "u":
            booking(ref).ended_by_suspension = True
        elif kind == "s":
            out.scans[ref] = ScanFacts(value["o"], tuple(value["v"]))
        elif kind == "w":
            out.warnings[ref] = value
        elif kind == "c":
            out.cases_opened[ref] = value
        elif kind == "k":
            out.cases_closed.add(ref)
        elif kind == "cw":
            out.withdrawn_windows.add(ref)
        elif kind == "dr":
            out.draws[ref] = DrawFacts(frozenset(value["a"]), frozenset(value["w"]), value["n"])
    return out


def _case_facts(raw: dict[bytes, bytes]) -> CaseFacts:
    out = CaseFacts()
    for name_raw, value_raw in raw.items():
        name = _text(name_raw)
        value = json.loads(value_raw)
        if name == "o":
            out.opened_at, out.deadline, out.violation = value["at"], value["due"], value["v"]
        elif name.startswith("h:"):
            out.handled.append((int(name[2:]) / 1000, bool(value)))
        elif name.startswith("r:"):
            out.sent_back.append(int(name[2:]) / 1000)
        elif name == "k":
            out.closed_at = float(value)
        elif name.startswith("e:"):
            out.scores.append(int(value))
    return out
