"""Where the "who should be where" projection lives: Redis in service, dicts in unit tests.

The interface and both stores stay in this one module (longer than most) so that they change
together: a record added to one is added to the other and to :meth:`ExpectationStore.dump`.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

from pydantic import TypeAdapter

from inspection.domain.expected import (
    CodeStatus,
    ExpectedBooking,
    GeoPoint,
    MarketFacts,
    MarketSchedule,
    Slot,
    StallCodeVersions,
    StallFacts,
    booking_at,
    code_status,
    free_stalls,
    keep_until,
)
from inspection.domain.market_time import (
    InstanceOverride,
    MarketTimeline,
    Suspension,
    WindowInstance,
    dates_for_next,
    local_date,
)
from stallkit.clock import Clock
from stallkit.redis_client import RedisClient, RedisPipeline
from stallkit.settings import CommonSettings

MIN_TTL_SECONDS = 3600
#: The earth radius Redis's GEO commands use.
EARTH_RADIUS_KM = 6372.7975608
#: Keys of the projection (the enforcement data under ``insp:{insp}:`` is not part of it).
PROJECTION_KEY = re.compile(r"^insp:\{([A-Z]{2}-\d{2}|geo)\}:")


class ExpectationStore(ABC):
    """The projection's records, grouped by market, and the questions asked of them.

    A store keeps the records (the abstract methods); the questions a scan or a street report
    asks (which window runs, who is booked, how many stalls are free, whether a code still
    holds) are answered here, once for both stores, by the domain rules.
    """

    @abstractmethod
    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None:
        """The booking expected at ``slot``, if any."""

    @abstractmethod
    async def put_expected(self, booking: ExpectedBooking) -> None:
        """Expect ``booking`` at its slot, replacing what was there."""

    @abstractmethod
    async def clear_expected(self, market_id: str, slot: Slot) -> None:
        """Expect nobody at ``slot``."""

    @abstractmethod
    async def expected_on(self, market_id: str, day: date) -> list[ExpectedBooking]:
        """Every booking expected in the market on ``day``."""

    @abstractmethod
    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None:
        """Remember that a booking ended, so a replay of its creation cannot revive it."""

    @abstractmethod
    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool:
        """Whether the booking's end was seen."""

    @abstractmethod
    async def put_stall(self, stall: StallFacts) -> None:
        """Store what the catalogue says about a stall."""

    @abstractmethod
    async def get_stall(self, market_id: str, stall_id: str) -> StallFacts | None:
        """What the catalogue said about a stall, if anything."""

    @abstractmethod
    async def stalls_of(self, market_id: str) -> list[StallFacts]:
        """Every stall of the market the catalogue told of."""

    @abstractmethod
    async def put_market(self, market: MarketFacts) -> None:
        """Store a market's facts and its location (the schedule: :meth:`put_schedule`)."""

    @abstractmethod
    async def get_market(self, market_id: str) -> MarketFacts | None:
        """What the catalogue said about a market, schedule included, if anything."""

    @abstractmethod
    async def put_schedule(self, market_id: str, schedule: MarketSchedule) -> None:
        """Store a market's weekly schedule."""

    @abstractmethod
    async def get_schedule(self, market_id: str) -> MarketSchedule | None:
        """A market's weekly schedule, if one was seen."""

    @abstractmethod
    async def nearest_markets(
        self, lat: float, lon: float, radius_km: float, limit: int
    ) -> list[tuple[str, float]]:
        """Markets within ``radius_km``: (market id, distance in km), nearest first."""

    @abstractmethod
    async def get_code_versions(self, market_id: str, stall_id: str) -> StallCodeVersions | None:
        """The stall's code versions seen so far, if any."""

    @abstractmethod
    async def put_code_versions(
        self, market_id: str, stall_id: str, versions: StallCodeVersions
    ) -> None:
        """Store the stall's code versions."""

    @abstractmethod
    async def get_override(
        self, market_id: str, day: date, window_id: str
    ) -> InstanceOverride | None:
        """What the windows service said about one window instance, if anything."""

    @abstractmethod
    async def put_override(
        self, market_id: str, day: date, window_id: str, override: InstanceOverride
    ) -> None:
        """Store what the windows service said about one window instance."""

    @abstractmethod
    async def get_suspension(self, market_id: str, suspension_id: str) -> Suspension | None:
        """A suspension of the market, if one was heard of."""

    @abstractmethod
    async def put_suspension(self, market_id: str, suspension: Suspension) -> None:
        """Store a suspension of the market."""

    @abstractmethod
    async def add_resume_all(self, market_id: str, at: datetime) -> None:
        """Remember a ``market.resumed`` without a suspension id (it lifts all, at ``at``)."""

    @abstractmethod
    async def timeline(self, market_id: str, days: Sequence[date]) -> MarketTimeline:
        """Schedule, suspensions and the instance overrides of ``days``, in one read."""

    @abstractmethod
    async def dump(self) -> dict[str, Any]:
        """The whole projection as plain, comparable data (for rebuild checks)."""

    # -- the questions --------------------------------------------------------------------------

    async def window_at(self, market_id: str, at: datetime) -> WindowInstance | None:
        """The window instance running at ``at`` (effective end), None if none runs then."""
        return (await self.timeline(market_id, [local_date(at)])).window_at(at)

    async def current_or_next_window(self, market_id: str, at: datetime) -> WindowInstance | None:
        """The instance running at ``at``, else the next one to start within 7 days."""
        return (await self.timeline(market_id, dates_for_next(at))).current_or_next(at)

    async def expected_at(
        self, market_id: str, stall_id: str, at: datetime
    ) -> ExpectedBooking | None:
        """The booking of the stall whose window contains ``at``."""
        bookings = await self.expected_on(market_id, local_date(at))
        return booking_at((b for b in bookings if b.stall_id == stall_id), at)

    async def expected_in(
        self, market_id: str, stall_id: str, instance: WindowInstance
    ) -> ExpectedBooking | None:
        """The booking of the stall in window ``instance`` (one read: what a scan asks)."""
        return await self.get_expected(
            market_id, Slot(stall_id=stall_id, date=instance.date, window_id=instance.window_id)
        )

    async def free_stalls(
        self, market_id: str, instance: WindowInstance, category: str | None
    ) -> int:
        """Active stalls (of ``category``, or any) with nobody booked in ``instance``."""
        booked = [
            b.stall_id
            for b in await self.expected_on(market_id, instance.date)
            if b.window_id == instance.window_id
        ]
        return free_stalls(await self.stalls_of(market_id), booked, category)

    async def code_status(self, market_id: str, stall_id: str, version: int) -> CodeStatus:
        """Whether a verified code of the stall is current, superseded or revoked."""
        return code_status(await self.get_code_versions(market_id, stall_id), version)


# --- serialization -----------------------------------------------------------------------------

_BOOKING = TypeAdapter(ExpectedBooking)
_SCHEDULE = TypeAdapter(MarketSchedule)
_CODES = TypeAdapter(StallCodeVersions)
_OVERRIDE = TypeAdapter(InstanceOverride)
_SUSPENSION = TypeAdapter(Suspension)


def _json(adapter: TypeAdapter[Any], value: Any) -> str:
    return adapter.dump_json(value).decode()


def booking_to_json(booking: ExpectedBooking) -> str:
    """Serialize an expected booking for storage."""
    return _json(_BOOKING, booking)


def booking_from_json(raw: str | bytes) -> ExpectedBooking:
    """Read back a stored expected booking."""
    return _BOOKING.validate_json(raw)


def market_to_json(market: MarketFacts) -> str:
    """Serialize a market's facts (not its schedule)."""
    location = market.location
    return json.dumps(
        {
            "district": market.district,
            "name_zh": market.name_zh,
            "name_en": market.name_en,
            "location": None if location is None else {"lat": location.lat, "lon": location.lon},
            "zones": list(market.zones),
            "as_of": None if market.as_of is None else market.as_of.isoformat(),
        },
        ensure_ascii=False,
    )


def market_from_json(
    market_id: str, raw: str | bytes, schedule: MarketSchedule | None
) -> MarketFacts:
    """Read back a market's facts (older records hold only the district), with its schedule."""
    data: dict[str, Any] = json.loads(raw)
    location = data.get("location")
    as_of = data.get("as_of")
    return MarketFacts(
        market_id=market_id,
        district=data["district"],
        name_zh=data.get("name_zh", ""),
        name_en=data.get("name_en", ""),
        location=None if location is None else GeoPoint(location["lat"], location["lon"]),
        zones=tuple(data.get("zones", ())),
        windows=() if schedule is None else schedule.windows,
        as_of=None if as_of is None else datetime.fromisoformat(as_of),
        schedule_as_of=None if schedule is None else schedule.as_of,
    )


def _decoded(decode: Callable[[bytes], Any]) -> Callable[[bytes | None], Any]:
    """``decode`` of a stored value, None for a missing one."""
    return lambda raw: None if raw is None else decode(raw)


class Read(NamedTuple):
    """One Redis read of the projection: the command, and how its reply becomes a record."""

    command: tuple[str, ...]
    decode: Callable[[Any], Any]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# --- Redis -------------------------------------------------------------------------------------


class RedisExpectationStore(ExpectationStore):
    """Redis layout, every key tagged with its market so a cluster keeps a market together.

    - ``insp:{M}:expected:<date>`` hash ``<stall>|<window>`` → booking JSON (expires)
    - ``insp:{M}:ended:<date>`` set of booking ids that ended (expires with the date)
    - ``insp:{M}:stalls`` hash ``<stall>`` → stall JSON; ``insp:{M}:market`` → market JSON;
      ``insp:{M}:schedule`` → schedule JSON
    - ``insp:{M}:codes`` hash ``<stall>`` → code versions JSON
    - ``insp:{M}:instances:<date>`` hash ``<window>`` → what the windows service said (expires)
    - ``insp:{M}:suspensions`` hash ``<id>`` → suspension JSON; ``insp:{M}:resumed`` set of
      times of ``market.resumed`` without an id
    - ``insp:{geo}:markets`` GEO set of market locations
    """

    def __init__(
        self, redis: RedisClient, settings: CommonSettings, clock: Clock, retention_days: int
    ):
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self.retention_days = retention_days

    def _key(self, market_id: str, *parts: str) -> str:
        return self.settings.key("insp", "{" + market_id + "}", *parts)

    @property
    def geo_key(self) -> str:
        """The GEO set of market locations."""
        return self.settings.key("insp", "{geo}", "markets")

    @staticmethod
    def _field(slot: Slot) -> str:
        return f"{slot.stall_id}|{slot.window_id}"

    def _ttl(self, day: date) -> int:
        left = keep_until(day, self.retention_days) - self.clock.now()
        return max(MIN_TTL_SECONDS, int(left.total_seconds()))

    async def read(self, read: Read) -> Any:
        """Make one read (see :meth:`expected_read` and the like) on its own."""
        return read.decode(await self.redis.execute_command(*read.command))

    async def _write(self, queue: Callable[..., None], *args: Any) -> None:
        """Make one write (``queue`` puts its commands on a pipeline) in a transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            queue(pipe, *args)
            await pipe.execute()

    # -- bookings ---------------------------------------------------------------------------

    def expected_read(self, market_id: str, slot: Slot) -> Read:
        """How to read the booking expected at ``slot`` (for one pipeline of many reads)."""
        key = self._key(market_id, "expected", slot.date.isoformat())
        return Read(("HGET", key, self._field(slot)), _decoded(booking_from_json))

    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None:
        """The booking expected at ``slot``, if any."""
        found: ExpectedBooking | None = await self.read(self.expected_read(market_id, slot))
        return found

    def queue_put_expected(self, pipe: RedisPipeline, booking: ExpectedBooking) -> None:
        """Queue :meth:`put_expected` on ``pipe``."""
        key = self._key(booking.market_id, "expected", booking.date.isoformat())
        pipe.hset(key, self._field(booking.slot), booking_to_json(booking))
        pipe.expire(key, self._ttl(booking.date))

    async def put_expected(self, booking: ExpectedBooking) -> None:
        """Expect ``booking`` at its slot, replacing what was there."""
        await self._write(self.queue_put_expected, booking)

    def queue_clear_expected(self, pipe: RedisPipeline, market_id: str, slot: Slot) -> None:
        """Queue :meth:`clear_expected` on ``pipe``."""
        pipe.hdel(self._key(market_id, "expected", slot.date.isoformat()), self._field(slot))

    async def clear_expected(self, market_id: str, slot: Slot) -> None:
        """Expect nobody at ``slot``."""
        await self._write(self.queue_clear_expected, market_id, slot)

    async def expected_on(self, market_id: str, day: date) -> list[ExpectedBooking]:
        """Every booking expected in the market on ``day``."""
        raw = await self.redis.hvals(self._key(market_id, "expected", day.isoformat()))
        return [booking_from_json(r) for r in raw]

    def queue_mark_ended(
        self, pipe: RedisPipeline, market_id: str, day: date, booking_id: str
    ) -> None:
        """Queue :meth:`mark_ended` on ``pipe``."""
        key = self._key(market_id, "ended", day.isoformat())
        pipe.sadd(key, booking_id)
        pipe.expire(key, self._ttl(day))

    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None:
        """Remember that a booking ended, so a replay of its creation cannot revive it."""
        await self._write(self.queue_mark_ended, market_id, day, booking_id)

    def ended_read(self, market_id: str, day: date, booking_id: str) -> Read:
        """How to read whether the booking's end was seen (for one pipeline of many reads)."""
        return Read(("SISMEMBER", self._key(market_id, "ended", day.isoformat()), booking_id), bool)

    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool:
        """Whether the booking's end was seen."""
        ended: bool = await self.read(self.ended_read(market_id, day, booking_id))
        return ended

    # -- catalogue --------------------------------------------------------------------------

    def queue_put_stall(self, pipe: RedisPipeline, stall: StallFacts) -> None:
        """Queue :meth:`put_stall` on ``pipe``."""
        value = json.dumps({"category": stall.category, "active": stall.active})
        pipe.hset(self._key(stall.market_id, "stalls"), stall.stall_id, value)

    async def put_stall(self, stall: StallFacts) -> None:
        """Store what the catalogue says about a stall."""
        await self._write(self.queue_put_stall, stall)

    async def get_stall(self, market_id: str, stall_id: str) -> StallFacts | None:
        """What the catalogue said about a stall, if anything."""
        raw = await self.redis.hget(self._key(market_id, "stalls"), stall_id)
        if raw is None:
            return None
        data = json.loads(raw)
        return StallFacts(stall_id, market_id, data["category"], data["active"])

    async def stalls_of(self, market_id: str) -> list[StallFacts]:
        """Every stall of the market the catalogue told of."""
        raw = await self.redis.hgetall(self._key(market_id, "stalls"))
        stalls = []
        for stall_id, value in raw.items():
            data = json.loads(value)
            stalls.append(StallFacts(_text(stall_id), market_id, data["category"], data["active"]))
        return stalls

    def queue_put_market(self, pipe: RedisPipeline, market: MarketFacts) -> None:
        """Queue :meth:`put_market` on ``pipe`` (the GEO set is another slot of a cluster: not
        in a transaction)."""
        pipe.set(self._key(market.market_id, "market"), market_to_json(market))
        if market.location is not None:
            point = (market.location.lon, market.location.lat, market.market_id)
            pipe.geoadd(self.geo_key, point)

    async def put_market(self, market: MarketFacts) -> None:
        """Store a market's facts and its location (the schedule: :meth:`put_schedule`)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_put_market(pipe, market)
            await pipe.execute()

    async def get_market(self, market_id: str) -> MarketFacts | None:
        """What the catalogue said about a market, schedule included, if anything."""
        raw, schedule = await self.redis.mget(
            self._key(market_id, "market"), self._key(market_id, "schedule")
        )
        if raw is None:
            return None
        return market_from_json(
            market_id, raw, None if schedule is None else _SCHEDULE.validate_json(schedule)
        )

    def queue_put_schedule(
        self, pipe: RedisPipeline, market_id: str, schedule: MarketSchedule
    ) -> None:
        """Queue :meth:`put_schedule` on ``pipe``."""
        pipe.set(self._key(market_id, "schedule"), _json(_SCHEDULE, schedule))

    async def put_schedule(self, market_id: str, schedule: MarketSchedule) -> None:
        """Store a market's weekly schedule."""
        await self._write(self.queue_put_schedule, market_id, schedule)

    async def get_schedule(self, market_id: str) -> MarketSchedule | None:
        """A market's weekly schedule, if one was seen."""
        raw = await self.redis.get(self._key(market_id, "schedule"))
        return None if raw is None else _SCHEDULE.validate_json(raw)

    async def nearest_markets(
        self, lat: float, lon: float, radius_km: float, limit: int
    ) -> list[tuple[str, float]]:
        """Markets within ``radius_km``: (market id, distance in km), nearest first."""
        found = await self.redis.geosearch(
            self.geo_key,
            longitude=lon,
            latitude=lat,
            radius=radius_km,
            unit="km",
            sort="ASC",
            count=limit,
            withdist=True,
        )
        return [(_text(member), float(distance)) for member, distance in found]

    async def get_code_versions(self, market_id: str, stall_id: str) -> StallCodeVersions | None:
        """The stall's code versions seen so far, if any."""
        raw = await self.redis.hget(self._key(market_id, "codes"), stall_id)
        return None if raw is None else _CODES.validate_json(raw)

    def queue_put_code_versions(
        self, pipe: RedisPipeline, market_id: str, stall_id: str, versions: StallCodeVersions
    ) -> None:
        """Queue :meth:`put_code_versions` on ``pipe``."""
        pipe.hset(self._key(market_id, "codes"), stall_id, _json(_CODES, versions))

    async def put_code_versions(
        self, market_id: str, stall_id: str, versions: StallCodeVersions
    ) -> None:
        """Store the stall's code versions."""
        await self._write(self.queue_put_code_versions, market_id, stall_id, versions)

    # -- windows ----------------------------------------------------------------------------

    def override_read(self, market_id: str, day: date, window_id: str) -> Read:
        """How to read what was said about one window instance (for one pipeline of reads)."""
        key = self._key(market_id, "instances", day.isoformat())
        return Read(("HGET", key, window_id), _decoded(_OVERRIDE.validate_json))

    async def get_override(
        self, market_id: str, day: date, window_id: str
    ) -> InstanceOverride | None:
        """What the windows service said about one window instance, if anything."""
        found: InstanceOverride | None = await self.read(
            self.override_read(market_id, day, window_id)
        )
        return found

    def queue_put_override(
        self,
        pipe: RedisPipeline,
        market_id: str,
        day: date,
        window_id: str,
        override: InstanceOverride,
    ) -> None:
        """Queue :meth:`put_override` on ``pipe``."""
        key = self._key(market_id, "instances", day.isoformat())
        pipe.hset(key, window_id, _json(_OVERRIDE, override))
        pipe.expire(key, self._ttl(day))

    async def put_override(
        self, market_id: str, day: date, window_id: str, override: InstanceOverride
    ) -> None:
        """Store what the windows service said about one window instance."""
        await self._write(self.queue_put_override, market_id, day, window_id, override)

    async def get_suspension(self, market_id: str, suspension_id: str) -> Suspension | None:
        """A suspension of the market, if one was heard of."""
        raw = await self.redis.hget(self._key(market_id, "suspensions"), suspension_id)
        return None if raw is None else _SUSPENSION.validate_json(raw)

    def queue_put_suspension(
        self, pipe: RedisPipeline, market_id: str, suspension: Suspension
    ) -> None:
        """Queue :meth:`put_suspension` on ``pipe``."""
        key = self._key(market_id, "suspensions")
        pipe.hset(key, suspension.suspension_id, _json(_SUSPENSION, suspension))

    async def put_suspension(self, market_id: str, suspension: Suspension) -> None:
        """Store a suspension of the market."""
        await self._write(self.queue_put_suspension, market_id, suspension)

    def queue_add_resume_all(self, pipe: RedisPipeline, market_id: str, at: datetime) -> None:
        """Queue :meth:`add_resume_all` on ``pipe``."""
        pipe.sadd(self._key(market_id, "resumed"), at.isoformat())

    async def add_resume_all(self, market_id: str, at: datetime) -> None:
        """Remember a ``market.resumed`` without a suspension id (it lifts all, at ``at``)."""
        await self._write(self.queue_add_resume_all, market_id, at)

    async def timeline(self, market_id: str, days: Sequence[date]) -> MarketTimeline:
        """Schedule, suspensions and the instance overrides of ``days``, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key(market_id, "schedule"))
            pipe.hvals(self._key(market_id, "suspensions"))
            pipe.smembers(self._key(market_id, "resumed"))
            for day in days:
                pipe.hgetall(self._key(market_id, "instances", day.isoformat()))
            schedule_raw, suspensions, resumed, *instances = await pipe.execute()
        schedule = None if schedule_raw is None else _SCHEDULE.validate_json(schedule_raw)
        overrides = {
            (day, _text(window_id)): _OVERRIDE.validate_json(raw)
            for day, found in zip(days, instances, strict=True)
            for window_id, raw in found.items()
        }
        return MarketTimeline(
            market_id=market_id,
            windows=() if schedule is None else schedule.windows,
            schedule_as_of=None if schedule is None else schedule.as_of,
            suspensions=[_SUSPENSION.validate_json(s) for s in suspensions],
            resumed_all=sorted(datetime.fromisoformat(_text(t)) for t in resumed),
            overrides=overrides,
        )

    # -- whole projection -------------------------------------------------------------------

    async def dump(self) -> dict[str, Any]:
        """Every projection key under this store's prefix (without it) and its value.

        Strings as text, hashes as dicts, sets as sorted lists, sorted sets (the GEO index) as
        ``[member, score]`` lists; TTLs are left out.
        """
        prefix = self.settings.redis_prefix
        found: dict[str, Any] = {}
        async for raw_key in self.redis.scan_iter(match=_glob_escape(prefix) + "insp:*"):
            key = _text(raw_key)
            name = key[len(prefix) :]
            if not PROJECTION_KEY.match(name):
                continue
            kind = _text(await self.redis.type(key))
            value: Any
            if kind == "string":
                value = _text(await self.redis.get(key))
            elif kind == "hash":
                value = {_text(k): _text(v) for k, v in (await self.redis.hgetall(key)).items()}
            elif kind == "set":
                value = sorted(_text(m) for m in await self.redis.smembers(key))
            elif kind == "zset":
                pairs = await self.redis.zrange(key, 0, -1, withscores=True)
                value = [[_text(m), s] for m, s in pairs]
            else:
                continue  # gone in between, or nothing this projection writes
            found[name] = value
        return dict(sorted(found.items()))


class ProjectionStore(Protocol):
    """The records the projection's folds read and write (a store, or one batch's view)."""

    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None: ...
    async def put_expected(self, booking: ExpectedBooking) -> None: ...
    async def clear_expected(self, market_id: str, slot: Slot) -> None: ...
    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None: ...
    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool: ...
    async def put_stall(self, stall: StallFacts) -> None: ...
    async def put_market(self, market: MarketFacts) -> None: ...
    async def get_market(self, market_id: str) -> MarketFacts | None: ...
    async def put_schedule(self, market_id: str, schedule: MarketSchedule) -> None: ...
    async def get_schedule(self, market_id: str) -> MarketSchedule | None: ...
    async def get_code_versions(
        self, market_id: str, stall_id: str
    ) -> StallCodeVersions | None: ...
    async def put_code_versions(
        self, market_id: str, stall_id: str, versions: StallCodeVersions
    ) -> None: ...
    async def get_override(
        self, market_id: str, day: date, window_id: str
    ) -> InstanceOverride | None: ...
    async def put_override(
        self, market_id: str, day: date, window_id: str, override: InstanceOverride
    ) -> None: ...
    async def get_suspension(self, market_id: str, suspension_id: str) -> Suspension | None: ...
    async def put_suspension(self, market_id: str, suspension: Suspension) -> None: ...
    async def add_resume_all(self, market_id: str, at: datetime) -> None: ...


class StagedExpectations:
    """The Redis projection as one batch of events sees it: the records the batch names are
    read in one round trip (:meth:`prefetch`), changes are kept in memory, and all of them are
    written in one round trip (:meth:`flush`), in the order they were made.

    A record that was not prefetched is read from Redis when first asked for (a change staged
    earlier in the batch is seen instead), so a fold is right whatever was prefetched. The
    flush is not a transaction: a crash part-way leaves a prefix of the changes, as applying
    the events one by one would, and the folds are idempotent, so the batch applied again
    (its offsets were not committed) ends where it should.
    """

    def __init__(self, store: RedisExpectationStore) -> None:
        self.store = store
        #: Records read or changed in this batch, by what reads them.
        self._seen: dict[tuple[Any, ...], Any] = {}
        #: Changes to write: a store's ``queue_*`` method and its arguments.
        self._changes: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    async def prefetch(
        self,
        *,
        slots: Iterable[tuple[str, Slot]] = (),
        ended: Iterable[tuple[str, date, str]] = (),
        overrides: Iterable[tuple[str, date, str]] = (),
    ) -> None:
        """Read the slots' expected bookings, whether the bookings ended and what was said
        about the window instances, in one round trip."""
        store = self.store
        reads = [
            *(store.expected_read(m, slot) for m, slot in slots),
            *(store.ended_read(m, day, booking_id) for m, day, booking_id in ended),
            *(store.override_read(m, day, window_id) for m, day, window_id in overrides),
        ]
        wanted = [r for r in {r.command: r for r in reads}.values() if r.command not in self._seen]
        if not wanted:
            return
        async with store.redis.pipeline(transaction=False) as pipe:
            for read in wanted:
                pipe.execute_command(*read.command)
            replies = await pipe.execute()
        for read, reply in zip(wanted, replies, strict=True):
            self._seen[read.command] = read.decode(reply)

    async def flush(self) -> None:
        """Write every staged change, in order, in one round trip."""
        if not self._changes:
            return
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for queue, args in self._changes:
                queue(pipe, *args)
            await pipe.execute()
        self._changes.clear()

    async def _get(self, read: Read) -> Any:
        if read.command not in self._seen:
            self._seen[read.command] = await self.store.read(read)
        return self._seen[read.command]

    async def _get_other(self, key: tuple[Any, ...], read: Callable[[], Awaitable[Any]]) -> Any:
        if key not in self._seen:
            self._seen[key] = await read()
        return self._seen[key]

    def _stage(
        self, key: tuple[Any, ...], value: Any, queue: Callable[..., None], *args: Any
    ) -> None:
        self._seen[key] = value
        self._changes.append((queue, args))

    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None:
        """As :meth:`ExpectationStore.get_expected`."""
        found: ExpectedBooking | None = await self._get(self.store.expected_read(market_id, slot))
        return found

    async def put_expected(self, booking: ExpectedBooking) -> None:
        """As :meth:`ExpectationStore.put_expected`."""
        key = self.store.expected_read(booking.market_id, booking.slot).command
        self._stage(key, booking, self.store.queue_put_expected, booking)

    async def clear_expected(self, market_id: str, slot: Slot) -> None:
        """As :meth:`ExpectationStore.clear_expected`."""
        key = self.store.expected_read(market_id, slot).command
        self._stage(key, None, self.store.queue_clear_expected, market_id, slot)

    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None:
        """As :meth:`ExpectationStore.mark_ended`."""
        key = self.store.ended_read(market_id, day, booking_id).command
        self._stage(key, True, self.store.queue_mark_ended, market_id, day, booking_id)

    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool:
        """As :meth:`ExpectationStore.has_ended`."""
        ended: bool = await self._get(self.store.ended_read(market_id, day, booking_id))
        return ended

    async def put_stall(self, stall: StallFacts) -> None:
        """As :meth:`ExpectationStore.put_stall` (the projection's folds never read it)."""
        self._changes.append((self.store.queue_put_stall, (stall,)))

    async def get_market(self, market_id: str) -> MarketFacts | None:
        """As :meth:`ExpectationStore.get_market`."""
        key = ("market", market_id)
        found: MarketFacts | None = await self._get_other(
            key, lambda: self.store.get_market(market_id)
        )
        schedule = await self.get_schedule(market_id)
        if found is not None and schedule is not None:
            found = replace(found, windows=schedule.windows, schedule_as_of=schedule.as_of)
        return found

    async def put_market(self, market: MarketFacts) -> None:
        """As :meth:`ExpectationStore.put_market`."""
        self._stage(("market", market.market_id), market, self.store.queue_put_market, market)

    async def get_schedule(self, market_id: str) -> MarketSchedule | None:
        """As :meth:`ExpectationStore.get_schedule`."""
        found: MarketSchedule | None = await self._get_other(
            ("schedule", market_id), lambda: self.store.get_schedule(market_id)
        )
        return found

    async def put_schedule(self, market_id: str, schedule: MarketSchedule) -> None:
        """As :meth:`ExpectationStore.put_schedule`."""
        key = ("schedule", market_id)
        self._stage(key, schedule, self.store.queue_put_schedule, market_id, schedule)

    async def get_code_versions(self, market_id: str, stall_id: str) -> StallCodeVersions | None:
        """As :meth:`ExpectationStore.get_code_versions`."""
        found: StallCodeVersions | None = await self._get_other(
            ("codes", market_id, stall_id),
            lambda: self.store.get_code_versions(market_id, stall_id),
        )
        return found

    async def put_code_versions(
        self, market_id: str, stall_id: str, versions: StallCodeVersions
    ) -> None:
        """As :meth:`ExpectationStore.put_code_versions`."""
        self._stage(
            ("codes", market_id, stall_id),
            versions,
            self.store.queue_put_code_versions,
            market_id,
            stall_id,
            versions,
        )

    async def get_override(
        self, market_id: str, day: date, window_id: str
    ) -> InstanceOverride | None:
        """As :meth:`ExpectationStore.get_override`."""
        found: InstanceOverride | None = await self._get(
            self.store.override_read(market_id, day, window_id)
        )
        return found

    async def put_override(
        self, market_id: str, day: date, window_id: str, override: InstanceOverride
    ) -> None:
        """As :meth:`ExpectationStore.put_override`."""
        key = self.store.override_read(market_id, day, window_id).command
        self._stage(
            key, override, self.store.queue_put_override, market_id, day, window_id, override
        )

    async def get_suspension(self, market_id: str, suspension_id: str) -> Suspension | None:
        """As :meth:`ExpectationStore.get_suspension`."""
        found: Suspension | None = await self._get_other(
            ("suspension", market_id, suspension_id),
            lambda: self.store.get_suspension(market_id, suspension_id),
        )
        return found

    async def put_suspension(self, market_id: str, suspension: Suspension) -> None:
        """As :meth:`ExpectationStore.put_suspension`."""
        self._stage(
            ("suspension", market_id, suspension.suspension_id),
            suspension,
            self.store.queue_put_suspension,
            market_id,
            suspension,
        )

    async def add_resume_all(self, market_id: str, at: datetime) -> None:
        """As :meth:`ExpectationStore.add_resume_all` (the folds never read it)."""
        self._changes.append((self.store.queue_add_resume_all, (market_id, at)))


# --- in memory ---------------------------------------------------------------------------------


class InMemoryExpectationStore(ExpectationStore):
    """Dicts instead of Redis, for unit tests."""

    def __init__(self) -> None:
        self.expected: dict[tuple[str, Slot], ExpectedBooking] = {}
        self.ended: set[tuple[str, date, str]] = set()
        self.stalls: dict[tuple[str, str], StallFacts] = {}
        self.markets: dict[str, MarketFacts] = {}
        self.schedules: dict[str, MarketSchedule] = {}
        self.codes: dict[tuple[str, str], StallCodeVersions] = {}
        self.overrides: dict[tuple[str, date, str], InstanceOverride] = {}
        self.suspensions: dict[tuple[str, str], Suspension] = {}
        self.resumed: dict[str, set[datetime]] = {}
        #: Locations as (lat, lon), for :meth:`nearest_markets`.
        self.locations: dict[str, GeoPoint] = {}

    async def get_expected(self, market_id: str, slot: Slot) -> ExpectedBooking | None:
        """The booking expected at ``slot``, if any."""
        return self.expected.get((market_id, slot))

    async def put_expected(self, booking: ExpectedBooking) -> None:
        """Expect ``booking`` at its slot, replacing what was there."""
        self.expected[(booking.market_id, booking.slot)] = booking

    async def clear_expected(self, market_id: str, slot: Slot) -> None:
        """Expect nobody at ``slot``."""
        self.expected.pop((market_id, slot), None)

    async def expected_on(self, market_id: str, day: date) -> list[ExpectedBooking]:
        """Every booking expected in the market on ``day``."""
        return [b for (m, slot), b in self.expected.items() if m == market_id and slot.date == day]

    async def mark_ended(self, market_id: str, day: date, booking_id: str) -> None:
        """Remember that a booking ended."""
        self.ended.add((market_id, day, booking_id))

    async def has_ended(self, market_id: str, day: date, booking_id: str) -> bool:
        """Whether the booking's end was seen."""
        return (market_id, day, booking_id) in self.ended

    async def put_stall(self, stall: StallFacts) -> None:
        """Store what the catalogue says about a stall."""
        self.stalls[(stall.market_id, stall.stall_id)] = stall

    async def get_stall(self, market_id: str, stall_id: str) -> StallFacts | None:
        """What the catalogue said about a stall, if anything."""
        return self.stalls.get((market_id, stall_id))

    async def stalls_of(self, market_id: str) -> list[StallFacts]:
        """Every stall of the market the catalogue told of."""
        return [s for (m, _), s in self.stalls.items() if m == market_id]

    async def put_market(self, market: MarketFacts) -> None:
        """Store a market's facts and its location (the schedule: :meth:`put_schedule`)."""
        self.markets[market.market_id] = market
        if market.location is not None:
            self.locations[market.market_id] = market.location

    async def get_market(self, market_id: str) -> MarketFacts | None:
        """What the catalogue said about a market, schedule included, if anything."""
        market = self.markets.get(market_id)
        if market is None:
            return None
        schedule = self.schedules.get(market_id)
        return market_from_json(market_id, market_to_json(market), schedule)

    async def put_schedule(self, market_id: str, schedule: MarketSchedule) -> None:
        """Store a market's weekly schedule."""
        self.schedules[market_id] = schedule

    async def get_schedule(self, market_id: str) -> MarketSchedule | None:
        """A market's weekly schedule, if one was seen."""
        return self.schedules.get(market_id)

    async def nearest_markets(
        self, lat: float, lon: float, radius_km: float, limit: int
    ) -> list[tuple[str, float]]:
        """Markets within ``radius_km`` by the haversine formula on Redis's earth radius (unit
        tests only; the Redis store asks GEOSEARCH)."""
        found = []
        for market_id, point in self.locations.items():
            dlat = math.radians(point.lat - lat)
            dlon = math.radians(point.lon - lon)
            h = (
                math.sin(dlat / 2) ** 2
                + math.cos(math.radians(lat))
                * math.cos(math.radians(point.lat))
                * math.sin(dlon / 2) ** 2
            )
            distance = 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))
            if distance <= radius_km:
                found.append((market_id, distance))
        return sorted(found, key=lambda f: f[1])[:limit]

    async def get_code_versions(self, market_id: str, stall_id: str) -> StallCodeVersions | None:
        """The stall's code versions seen so far, if any."""
        return self.codes.get((market_id, stall_id))

    async def put_code_versions(
        self, market_id: str, stall_id: str, versions: StallCodeVersions
    ) -> None:
        """Store the stall's code versions."""
        self.codes[(market_id, stall_id)] = versions

    async def get_override(
        self, market_id: str, day: date, window_id: str
    ) -> InstanceOverride | None:
        """What the windows service said about one window instance, if anything."""
        return self.overrides.get((market_id, day, window_id))

    async def put_override(
        self, market_id: str, day: date, window_id: str, override: InstanceOverride
    ) -> None:
        """Store what the windows service said about one window instance."""
        self.overrides[(market_id, day, window_id)] = override

    async def get_suspension(self, market_id: str, suspension_id: str) -> Suspension | None:
        """A suspension of the market, if one was heard of."""
        return self.suspensions.get((market_id, suspension_id))

    async def put_suspension(self, market_id: str, suspension: Suspension) -> None:
        """Store a suspension of the market."""
        self.suspensions[(market_id, suspension.suspension_id)] = suspension

    async def add_resume_all(self, market_id: str, at: datetime) -> None:
        """Remember a ``market.resumed`` without a suspension id."""
        self.resumed.setdefault(market_id, set()).add(at)

    async def timeline(self, market_id: str, days: Sequence[date]) -> MarketTimeline:
        """Schedule, suspensions and the instance overrides of ``days``."""
        schedule = self.schedules.get(market_id)
        return MarketTimeline(
            market_id=market_id,
            windows=() if schedule is None else schedule.windows,
            schedule_as_of=None if schedule is None else schedule.as_of,
            suspensions=[s for (m, _), s in self.suspensions.items() if m == market_id],
            resumed_all=sorted(self.resumed.get(market_id, ())),
            overrides={
                (day, window_id): ov
                for (m, day, window_id), ov in self.overrides.items()
                if m == market_id and day in days
            },
        )

    async def dump(self) -> dict[str, Any]:
        """Everything held, as comparable data."""
        return {
            "expected": dict(self.expected),
            "ended": sorted(self.ended),
            "stalls": dict(self.stalls),
            "markets": dict(self.markets),
            "schedules": dict(self.schedules),
            "codes": dict(self.codes),
            "overrides": dict(self.overrides),
            "suspensions": dict(self.suspensions),
            "resumed": {m: sorted(t) for m, t in self.resumed.items()},
            "locations": dict(self.locations),
        }
