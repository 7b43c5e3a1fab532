"""The booking ledger in Redis: one Lua script per decision, events written to the outbox.

The scripts take every key they touch in ``KEYS`` (built from :class:`Keys`, all in the
``{alloc}`` slot) and their inputs as one JSON object of named fields, so they run unchanged on
a single Redis and on a Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

from pydantic_core import to_json

from allocation.adapters.keys import Keys
from allocation.domain.model import Booking, BookingState
from allocation.domain.rules import iso_week
from contracts.catalogue import Category
from stallkit.redis_client import RedisClient


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


def _ts(value: bytes | None) -> datetime | None:
    return None if not value else datetime.fromtimestamp(float(value), tz=UTC)


@dataclass(frozen=True)
class Decision:
    """What a script decided: ``ok``/``replay`` with a value, ``err`` with a code, or ``retry``.

    ``retry``: something the caller read before the script ran no longer holds (read again).
    """

    outcome: str
    value: str
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxEvent:
    """An event to append to the outbox inside a script (``value``: the validated envelope)."""

    topic: str
    key: str
    event_id: str
    type: str
    value: str

    def fields(self) -> dict[str, str]:
        """The named fields a script appends to the outbox stream."""
        return {
            "topic": self.topic,
            "key": self.key,
            "event_id": self.event_id,
            "type": self.type,
            "value": self.value,
        }


@dataclass(frozen=True)
class BookingAttempt:
    """Everything the booking script decides on, prepared by the service from its rules."""

    now: float
    booking_id: str
    vendor_id: str
    stall_id: str
    market_id: str
    window_id: str
    date: date
    category: Category
    starts_at: float
    ends_at: float
    window_signature: str
    idempotency_key: str
    body_hash: str
    idempotency_ttl: int
    weekly_cap: int
    opens_priority: float
    opens_standard: float
    hold_until: float
    held: int
    total: int
    #: BookingCreated as it leaves for a priority vendor and for a standard one.
    created_if_priority: OutboxEvent
    created_if_standard: OutboxEvent
    #: The lottery: before ``draw_at`` the window is applied for, and first come after its
    #: draw is done; a booking the draw itself makes (``from_draw``) passes.
    lottery: bool = False
    draw_at: float = 0.0
    from_draw: bool = False
    #: Booking attempts the vendor may make in a minute of the service clock (0: no limit).
    attempt_limit: int = 0

    @property
    def week(self) -> str:
        """ISO week the booking counts toward."""
        return iso_week(self.date)

    def inputs(self) -> dict[str, Any]:
        """The script's named inputs."""
        return {
            "now": self.now,
            "booking_id": self.booking_id,
            "vendor_id": self.vendor_id,
            "stall_id": self.stall_id,
            "market_id": self.market_id,
            "window_id": self.window_id,
            "date": self.date.isoformat(),
            "week": self.week,
            "category": self.category.value,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "span": f"{self.starts_at!r},{self.ends_at!r}",
            "window_signature": self.window_signature,
            "body_hash": self.body_hash,
            "idempotency_ttl": self.idempotency_ttl,
            "weekly_cap": self.weekly_cap,
            "attempt_limit": self.attempt_limit,
            "opens_priority": self.opens_priority,
            "opens_standard": self.opens_standard,
            "hold_until": self.hold_until,
            "held": self.held,
            "total": self.total,
            "lottery": self.lottery,
            "draw_at": self.draw_at,
            "from_draw": self.from_draw,
            "created": {
                "priority": self.created_if_priority.fields(),
                "standard": self.created_if_standard.fields(),
            },
        }


@dataclass(frozen=True)
class NoShowCount:
    """No-show accounting of a transition, decided by the caller from a read of the count."""

    #: Start of the rolling period (epoch seconds).
    since: float
    #: The vendor's no-shows in the period before this one, as the caller read them.
    prior: int
    #: The vendor's suspension end if this no-show suspends them (epoch seconds), else ``None``.
    suspend_until: float | None


class Ledger:
    """Bookings, claims, counters and no-shows in Redis."""

    def __init__(self, redis: RedisClient, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._book = redis.register_script(_script("book.lua"))
        self._transition = redis.register_script(_script("transition.lua"))
        self._index_active = redis.register_script(_script("index_active.lua"))

    @staticmethod
    def _decision(raw: list[bytes]) -> Decision:
        parts = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
        return Decision(parts[0], parts[1] if len(parts) > 1 else "", tuple(parts[2:]))

    def book_keys(self, attempt: BookingAttempt) -> list[str]:
        """The keys of the booking script, in the order book.lua names them."""
        k, day = self.keys, attempt.date.isoformat()
        return [
            k.idempotency(attempt.vendor_id, attempt.idempotency_key),
            k.vendor(attempt.vendor_id),
            k.stall(attempt.stall_id),
            k.window(attempt.market_id, attempt.window_id),
            k.suspended(attempt.market_id, day),
            k.claim(attempt.stall_id, day, attempt.window_id),
            k.window_counts(attempt.market_id, day, attempt.window_id),
            k.vendor_active(attempt.vendor_id),
            k.vendor_bookings(attempt.vendor_id),
            k.vendor_week(attempt.vendor_id, attempt.week),
            k.booking(attempt.booking_id),
            k.window_bookings(attempt.market_id, day, attempt.window_id),
            k.outbox(),
            k.draw(attempt.market_id, day, attempt.window_id),
            k.vendor_attempts(attempt.vendor_id),
        ]

    async def book(self, attempt: BookingAttempt) -> Decision:
        """Run the booking decision script."""
        raw = await self._book(keys=self.book_keys(attempt), args=[as_json(attempt.inputs())])
        return self._decision(raw)

    def transition_keys(self, booking: Booking) -> list[str]:
        """The keys of the transition script, in the order transition.lua names them."""
        k, day = self.keys, booking.date.isoformat()
        return [
            k.booking(booking.id),
            k.stall(booking.stall_id),
            k.claim(booking.stall_id, day, booking.window_id),
            k.window_counts(booking.market_id, day, booking.window_id),
            k.vendor_week(booking.vendor_id, iso_week(booking.date)),
            k.vendor_active(booking.vendor_id),
            k.no_shows(booking.vendor_id),
            k.vendor(booking.vendor_id),
            k.outbox(),
        ]

    async def transition(
        self,
        booking: Booking,
        *,
        now: float,
        owner: str | None,
        allowed_from: frozenset[BookingState],
        to_state: BookingState,
        release: bool,
        fields: dict[str, str],
        events: list[OutboxEvent],
        no_show: NoShowCount | None = None,
        code: tuple[str, int] | None = None,
    ) -> Decision:
        """Move ``booking`` to ``to_state`` if it is in one of ``allowed_from``, atomically.

        ``booking`` is the caller's read: it names the keys. ``retry`` if it no longer matches
        the store or the no-show count moved since ``no_show`` was read.
        """
        inputs: dict[str, Any] = {
            "now": now,
            "booking_id": booking.id,
            "expect": {
                "vendor": booking.vendor_id,
                "stall": booking.stall_id,
                "market": booking.market_id,
                "date": booking.date.isoformat(),
                "window": booking.window_id,
                "week": iso_week(booking.date),
            },
            "allowed_from": sorted(s.value for s in allowed_from),
            "to_state": to_state.value,
            "release": release,
            "fields": fields,
            "events": [e.fields() for e in events],
        }
        if owner is not None:
            inputs["owner"] = owner
        if code is not None:
            inputs["code"] = {"stall": code[0], "version": str(code[1])}
        if no_show is not None:
            # ``since`` as text: the script uses it verbatim in ZCOUNT and ZREMRANGEBYSCORE.
            terms: dict[str, Any] = {"since": repr(no_show.since), "prior": no_show.prior}
            if no_show.suspend_until is not None:
                terms["suspend_until"] = no_show.suspend_until
            inputs["no_show"] = terms
        raw = await self._transition(keys=self.transition_keys(booking), args=[as_json(inputs)])
        return self._decision(raw)

    async def index_active_bookings(self, now: float) -> int:
        """Index active bookings made before the overlap check's index existed; how many.

        Idempotent and safe beside live traffic: run once after upgrading a store that holds
        bookings (the booking script indexes every booking it makes).
        """
        since = now - 86400  # a booking that ended before cannot overlap anything bookable
        prefix = self.keys.vendor_bookings("")
        added = 0
        async for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            vendor_id = key.decode()[len(prefix) :]
            ids = await self.redis.zrangebyscore(key, since - 86400, "+inf")  # by start time
            if ids:
                keys = [self.keys.vendor_active(vendor_id)]
                keys += [self.keys.booking(i.decode()) for i in ids]
                raw = await self._index_active(keys=keys, args=[as_json({"since": since})])
                added += int(raw)
        return added

    async def get(self, booking_id: str) -> Booking | None:
        """One booking, or ``None``."""
        raw = await self.redis.hgetall(self.keys.booking(booking_id))
        return self._booking(raw) if raw else None

    async def get_many(self, booking_ids: list[str]) -> list[Booking]:
        """Bookings by id, in order, skipping missing ones."""
        if not booking_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for bid in booking_ids:
            pipe.hgetall(self.keys.booking(bid))
        rows: list[dict[bytes, bytes]] = await pipe.execute()
        return [self._booking(r) for r in rows if r]

    async def vendor_booking_ids(self, vendor_id: str, limit: int = 200) -> list[str]:
        """A vendor's booking ids, newest window first."""
        ids = await self.redis.zrevrange(self.keys.vendor_bookings(vendor_id), 0, limit - 1)
        return [i.decode() for i in ids]

    async def window_booking_ids(self, market_id: str, day: date, window_id: str) -> list[str]:
        """Ids of bookings made for a window occurrence."""
        ids = await self.redis.smembers(
            self.keys.window_bookings(market_id, day.isoformat(), window_id)
        )
        return sorted(i.decode() for i in ids)

    async def claimed_stalls(self, stall_ids: list[str], day: date, window_id: str) -> set[str]:
        """Which of ``stall_ids`` are held by an active booking for the window."""
        if not stall_ids:
            return set()
        values = await self.redis.mget(
            [self.keys.claim(s, day.isoformat(), window_id) for s in stall_ids]
        )
        return {s for s, v in zip(stall_ids, values, strict=True) if v is not None}

    async def window_counts(self, market_id: str, day: date, window_id: str) -> tuple[int, int]:
        """(priority, standard) active bookings of a window occurrence."""
        raw = await self.redis.hmget(
            self.keys.window_counts(market_id, day.isoformat(), window_id), ["priority", "standard"]
        )
        return int(raw[0] or 0), int(raw[1] or 0)

    async def no_shows_since(self, vendor_id: str, since: float) -> int:
        """How many no-shows the vendor has since ``since`` (as the transition script counts)."""
        return int(await self.redis.zcount(self.keys.no_shows(vendor_id), repr(since), "+inf"))

    @staticmethod
    def _booking(raw: dict[bytes, bytes]) -> Booking:
        r = {k.decode(): v.decode() for k, v in raw.items()}
        return Booking(
            id=r["id"],
            vendor_id=r["vendor"],
            market_id=r["market"],
            stall_id=r["stall"],
            date=date.fromisoformat(r["date"]),
            window_id=r["window"],
            category=Category(r["category"]),
            priority=r.get("priority") == "1",
            state=BookingState(r["state"]),
            starts_at=datetime.fromtimestamp(float(r["start_ts"]), tz=UTC),
            ends_at=datetime.fromtimestamp(float(r["end_ts"]), tz=UTC),
            created_at=datetime.fromtimestamp(float(r["created_ts"]), tz=UTC),
            checked_in_at=_ts(raw.get(b"checked_in_ts")),
            cancelled_at=_ts(raw.get(b"cancelled_ts")),
            late_cancellation=r.get("late") == "1",
            reason=r.get("reason"),
        )


def as_json(value: Any) -> str:
    """Compact JSON for script arguments (UTF-8 as is; anything else JSON lacks as its ``str``).

    pydantic-core's encoder writes the same text as ``json.dumps`` with compact separators for
    the plain values given here, about ten times faster (it ran on every booking).
    """
    return to_json(value, fallback=str).decode()
