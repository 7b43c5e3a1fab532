"""Webhook subscriptions in Redis: their settings, position, failures, delivery log and lease.

One hash per subscription holds what it is (URL, secret, filters) and where it stands (status,
cursor, epoch, the entry it is failing on). Everything that moves the position runs as a script
that checks the delivery lease and the epoch first, so a replica that lost its lease, or a
delivery that began before a replay, cannot move it. The log is a capped list, newest first.

Every key shares the ``{feed}`` hash tag with the feed log.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import IntEnum

from reporting.domain.webhooks import (
    TRANSITIONS,
    Change,
    Delivery,
    DeliveryState,
    Status,
    Subscription,
)
from stallkit.redis_client import RedisClient
from stallkit.settings import CommonSettings

# KEYS: ids, feed's ids, subscription. ARGV: id, the feed's limit, then fields as pairs.
_CREATE = """
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 0 end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""
# KEYS: ids, feed's ids, subscription, log. ARGV: id, feed.
_DELETE = """
if redis.call('HGET', KEYS[3], 'feed') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
# The delivery scripts' common check. KEYS: subscription, lease. ARGV: owner, epoch.
# Each returns a table whose first item is 1 when done; {-1}: the lease is not ours or the
# subscription is gone; {0}: the position was set from outside or the status changed.
_HELD = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {-1} end
if epoch ~= ARGV[2] or redis.call('HGET', KEYS[1], 'status') ~= 'active' then return {0} end
"""
# ARGV: ..., the new cursor.
_ADVANCE = (
    _HELD
    + """
redis.call('HSET', KEYS[1], 'cursor', ARGV[3])
redis.call('HDEL', KEYS[1], 'failing_entry', 'failing_since', 'attempts')
return {1}
"""
)
# ARGV: ..., entry id, now (ISO). Returns {1, attempts, failing since} or {code}.
_FAILED = (
    _HELD
    + """
if redis.call('HGET', KEYS[1], 'failing_entry') ~= ARGV[3] then
  redis.call('HSET', KEYS[1], 'failing_entry', ARGV[3], 'failing_since', ARGV[4], 'attempts', 0)
end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {1, n, redis.call('HGET', KEYS[1], 'failing_since')}
"""
)
# ARGV: ..., paused at (ISO), reason.
_PAUSE = (
    _HELD
    + """
redis.call('HSET', KEYS[1], 'status', 'paused', 'paused_at', ARGV[3], 'paused_reason', ARGV[4])
return {1}
"""
)
# KEYS: subscription. ARGV: feed, new status, cursor ('' to keep), then the statuses it may
# leave. Returns {1 if done else 0, the status it was in}; {} when there is no such one.
_SET_POSITION = """
if redis.call('HGET', KEYS[1], 'feed') ~= ARGV[1] then return {} end
local status = redis.call('HGET', KEYS[1], 'status')
local allowed = false
for i = 4, #ARGV do if ARGV[i] == status then allowed = true end end
if not allowed then return {0, status} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'cursor', ARGV[3]) end
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HDEL', KEYS[1], 'paused_at', 'paused_reason', 'failing_entry', 'failing_since',
  'attempts')
return {1, status}
"""
# KEYS: subscription, log. ARGV: record, length.
_LOG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return 1
"""
# A lease that lapsed (a stalled replica) and that nobody took since is taken back: nothing was
# delivered by anyone else in between, so the holder carries on instead of starting over.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Held(IntEnum):
    """What a delivery script found."""

    DONE = 1
    MOVED = 0  # the position was set from outside (resume, replay) or the status changed
    LOST = -1  # the lease is another replica's, or the subscription was deleted


@dataclass(frozen=True)
class Failure:
    """A failed attempt recorded: how many so far at this entry, and since when."""

    held: Held
    attempts: int = 0
    failing_since: dt.datetime | None = None


@dataclass(frozen=True)
class Listed:
    """A subscription as the supervisor sees it."""

    id: str
    feed: str
    status: Status
    epoch: int


def _time(raw: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(raw) if raw else None


class WebhookStore:
    """The subscriptions, their positions and delivery logs, and the delivery leases."""

    def __init__(self, redis: RedisClient, settings: CommonSettings, *, log_length: int = 1000):
        self.redis = redis
        self.settings = settings
        self.log_length = log_length
        self._create = redis.register_script(_CREATE)
        self._delete = redis.register_script(_DELETE)
        self._advance = redis.register_script(_ADVANCE)
        self._failed = redis.register_script(_FAILED)
        self._pause = redis.register_script(_PAUSE)
        self._set_position = redis.register_script(_SET_POSITION)
        self._log = redis.register_script(_LOG)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _key(self, *parts: str) -> str:
        return self.settings.key("rep", "{feed}", "wh", *parts)

    def _ids(self) -> str:
        return self._key("ids")

    def _feed_ids(self, feed: str) -> str:
        return self._key("feed", feed)

    def _sub(self, sub_id: str) -> str:
        return self._key("sub", sub_id)

    def _log_key(self, sub_id: str) -> str:
        return self._key("log", sub_id)

    def lease_key(self, sub_id: str) -> str:
        """The key of a subscription's delivery lease."""
        return self._key("lease", sub_id)

    # -- subscriptions ------------------------------------------------------------------

    async def create(self, sub: Subscription, cursor: str, *, limit: int) -> bool:
        """Store a new subscription delivering after ``cursor``; False if the feed has
        ``limit`` already."""
        fields: dict[str, str] = {
            "id": sub.id,
            "feed": sub.feed,
            "url": sub.url,
            "secret": sub.secret,
            "event_types": json.dumps(list(sub.event_types)),
            "markets": json.dumps(list(sub.markets)),
            "description": sub.description,
            "created_at": sub.created_at.isoformat(),
            "status": Status.ACTIVE.value,
            "cursor": cursor,
            "epoch": "0",
        }
        args: list[str | int] = [sub.id, limit]
        for name, value in fields.items():
            args += [name, value]
        keys = [self._ids(), self._feed_ids(sub.feed), self._sub(sub.id)]
        return bool(await self._create(keys=keys, args=args))

    async def delete(self, feed: str, sub_id: str) -> bool:
        """Remove a subscription of ``feed`` and its log; False if there is none."""
        keys = [self._ids(), self._feed_ids(feed), self._sub(sub_id), self._log_key(sub_id)]
        return bool(await self._delete(keys=keys, args=[sub_id, feed]))

    @staticmethod
    def _parse(raw: dict[bytes, bytes]) -> tuple[Subscription, DeliveryState]:
        f = {k.decode(): v.decode() for k, v in raw.items()}
        sub = Subscription(
            id=f["id"],
            feed=f["feed"],
            url=f["url"],
            secret=f["secret"],
            event_types=tuple(json.loads(f["event_types"])),
            markets=tuple(json.loads(f["markets"])),
            description=f["description"],
            created_at=dt.datetime.fromisoformat(f["created_at"]),
        )
        state = DeliveryState(
            status=Status(f["status"]),
            cursor=f["cursor"],
            epoch=int(f["epoch"]),
            paused_at=_time(f.get("paused_at")),
            paused_reason=f.get("paused_reason"),
            failing_entry=f.get("failing_entry"),
            failing_since=_time(f.get("failing_since")),
            attempts=int(f.get("attempts", "0")),
        )
        return sub, state

    async def get(self, sub_id: str) -> tuple[Subscription, DeliveryState] | None:
        """A subscription and where it stands, or None."""
        raw = await self.redis.hgetall(self._sub(sub_id))
        return self._parse(raw) if raw and b"epoch" in raw else None

    async def in_feed(self, feed: str) -> list[tuple[Subscription, DeliveryState]]:
        """The subscriptions of ``feed``, oldest first."""
        ids = sorted(m.decode() for m in await self.redis.smembers(self._feed_ids(feed)))
        async with self.redis.pipeline(transaction=False) as pipe:
            for sub_id in ids:
                pipe.hgetall(self._sub(sub_id))
            raws = await pipe.execute()
        found = [self._parse(raw) for raw in raws if raw and b"epoch" in raw]
        return sorted(found, key=lambda pair: (pair[0].created_at, pair[0].id))

    async def overview(self) -> list[Listed]:
        """Every subscription's id, feed, status and epoch (for the supervisor)."""
        ids = sorted(m.decode() for m in await self.redis.smembers(self._ids()))
        async with self.redis.pipeline(transaction=False) as pipe:
            for sub_id in ids:
                pipe.hmget(self._sub(sub_id), ["feed", "status", "epoch"])
            rows = await pipe.execute()
        return [
            Listed(sub_id, feed.decode(), Status(status.decode()), int(epoch))
            for sub_id, (feed, status, epoch) in zip(ids, rows, strict=True)
            if feed is not None and status is not None and epoch is not None
        ]

    async def change(
        self, feed: str, sub_id: str, change: Change, cursor: str | None = None
    ) -> Status | None:
        """Apply ``change`` (resume, replay to ``cursor``) if the transition table allows it
        from the subscription's status; that status, or None if ``feed`` has no such one."""
        leaving = sorted({old.value for (old, c) in TRANSITIONS if c is change})
        new = {TRANSITIONS[(Status(old), change)] for old in leaving}
        assert len(new) == 1, "a change leads to one state"
        args = [feed, new.pop().value, cursor or "", *leaving]
        result = await self._set_position(keys=[self._sub(sub_id)], args=args)
        return Status(result[1].decode()) if result else None

    # -- delivery (lease holder only) ---------------------------------------------------

    def _held_keys(self, sub_id: str) -> list[str]:
        return [self._sub(sub_id), self.lease_key(sub_id)]

    async def advance(self, sub_id: str, owner: str, epoch: int, cursor: str) -> Held:
        """Move the position to ``cursor`` (delivered or filtered out) and forget failures."""
        args = [owner, epoch, cursor]
        return Held(int((await self._advance(keys=self._held_keys(sub_id), args=args))[0]))

    async def failed(
        self, sub_id: str, owner: str, epoch: int, entry_id: str, now: dt.datetime
    ) -> Failure:
        """Count a failed attempt at ``entry_id``; its first failure starts the retry time."""
        args = [owner, epoch, entry_id, now.isoformat()]
        result = await self._failed(keys=self._held_keys(sub_id), args=args)
        held = Held(int(result[0]))
        if held is not Held.DONE:
            return Failure(held)
        return Failure(held, int(result[1]), dt.datetime.fromisoformat(result[2].decode()))

    async def pause(
        self, sub_id: str, owner: str, epoch: int, now: dt.datetime, reason: str
    ) -> Held:
        """Pause the subscription: retries ran out (or its position expired)."""
        args = [owner, epoch, now.isoformat(), reason]
        return Held(int((await self._pause(keys=self._held_keys(sub_id), args=args))[0]))

    async def record(self, sub_id: str, delivery: Delivery) -> None:
        """Add an attempt to the delivery log (kept to its last ``log_length``)."""
        keys = [self._sub(sub_id), self._log_key(sub_id)]
        await self._log(keys=keys, args=[delivery.to_json(), self.log_length])

    async def deliveries(self, sub_id: str, limit: int) -> list[Delivery]:
        """The latest ``limit`` attempts, newest first."""
        raw = await self.redis.lrange(self._log_key(sub_id), 0, limit - 1)
        return [Delivery.from_json(r) for r in raw]

    # -- the lease ----------------------------------------------------------------------

    async def acquire(self, sub_id: str, owner: str, ttl_ms: int) -> bool:
        """Take the subscription's delivery lease if nobody holds it."""
        return bool(await self.redis.set(self.lease_key(sub_id), owner, nx=True, px=ttl_ms))

    async def renew(self, sub_id: str, owner: str, ttl_ms: int) -> bool:
        """Extend the lease if it is still ours, or take it back if it lapsed and is free."""
        return bool(await self._renew(keys=[self.lease_key(sub_id)], args=[owner, ttl_ms]))

    async def release(self, sub_id: str, owner: str) -> None:
        """Hand the lease over at once (if it is still ours)."""
        await self._release(keys=[self.lease_key(sub_id)], args=[owner])
