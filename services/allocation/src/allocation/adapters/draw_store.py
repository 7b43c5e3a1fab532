"""The lottery draws in Redis: one hash per window occurrence, its applications and outcomes.

A draw moves ``open`` → ``closed`` → ``drawn`` → ``done``, each step once (``draw_step.lua``):
closing stops applications, so what the draw reads no longer moves; ``drawn`` stores the inputs
and the result before any booking is written, so a replica that takes over after a crash books
exactly what was drawn; ``done`` appends ``draw.completed`` to the outbox in the same step. The
seed and the salt of the pseudonyms stay in the hash; only the seed is revealed, when drawn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from allocation.adapters.keys import Keys
from allocation.adapters.ledger import Decision, OutboxEvent, as_json
from stallkit.redis_client import RedisClient


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


def member(market_id: str, day: date, window_id: str) -> str:
    """A draw's name in the due set and a vendor's applications: ``market|date|window``."""
    return f"{market_id}|{day.isoformat()}|{window_id}"


def parse_member(text: str) -> tuple[str, date, str]:
    """The market, date and window of a draw's name."""
    market_id, day, window_id = text.split("|")
    return market_id, date.fromisoformat(day), window_id


@dataclass(frozen=True)
class DrawRecord:
    """A draw as stored."""

    state: str
    seed: str
    salt: str
    commitment: str
    draw_at: float
    inputs: str | None
    result: str | None
    #: pseudonym -> vendor id (kept private; the published inputs carry pseudonyms only).
    who: dict[str, str]


class DrawStore:
    """Read and move the draws."""

    def __init__(self, redis: RedisClient, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._schedule = redis.register_script(_script("draw_schedule.lua"))
        self._apply = redis.register_script(_script("draw_apply.lua"))
        self._withdraw = redis.register_script(_script("draw_withdraw.lua"))
        self._step = redis.register_script(_script("draw_step.lua"))

    def _keys(self, market_id: str, day: date, window_id: str) -> tuple[str, str, str]:
        d = day.isoformat()
        k = self.keys
        return (
            k.draw(market_id, d, window_id),
            k.draw_applications(market_id, d, window_id),
            k.draw_outcomes(market_id, d, window_id),
        )

    async def schedule(
        self,
        market_id: str,
        day: date,
        window_id: str,
        *,
        seed: str,
        salt: str,
        commitment: str,
        draw_at: float,
        event: OutboxEvent,
    ) -> bool:
        """Create the draw with its seed and publish its commitment, once; whether this did."""
        draw, _, _ = self._keys(market_id, day, window_id)
        inputs = {
            "seed": seed,
            "salt": salt,
            "commitment": commitment,
            "draw_at": draw_at,
            "member": member(market_id, day, window_id),
            "event": event.fields(),
        }
        keys = [draw, self.keys.draws_due(), self.keys.outbox()]
        return bool(await self._schedule(keys=keys, args=[as_json(inputs)]))

    async def get(self, market_id: str, day: date, window_id: str) -> DrawRecord | None:
        """The draw, or ``None`` if it was never scheduled."""
        draw, _, _ = self._keys(market_id, day, window_id)
        raw = await self.redis.hgetall(draw)
        if not raw:
            return None
        r = {k.decode(): v.decode() for k, v in raw.items()}
        return DrawRecord(
            state=r["state"],
            seed=r["seed"],
            salt=r["salt"],
            commitment=r["commitment"],
            draw_at=float(r["draw_at"]),
            inputs=r.get("inputs"),
            result=r.get("result"),
            who=json.loads(r["who"]) if r.get("who") else {},
        )

    async def apply(
        self,
        market_id: str,
        day: date,
        window_id: str,
        *,
        vendor_id: str,
        starts_at: float,
        ends_at: float,
        week: str,
        weekly_cap: int,
        application: dict[str, Any],
        draw_at: float,
        now: float,
        opens: tuple[float, float],
        categories: Sequence[str],
        market_categories: Sequence[str],
    ) -> Decision:
        """Add or change a vendor's application while the draw is open, checking the vendor's
        suspension, booking horizon (``opens``: for a priority vendor, for the others) and
        category permits as verified on the window's date, all in the one script."""
        draw, apps, _ = self._keys(market_id, day, window_id)
        k = self.keys
        keys = [draw, apps, k.vendor_applications(vendor_id), k.vendor_active(vendor_id),
                k.vendor_week(vendor_id, week), k.vendor_draw_history(vendor_id),
                k.suspended(market_id, day.isoformat()), k.vendor(vendor_id)]  # fmt: skip
        inputs = {
            "vendor_id": vendor_id,
            "member": member(market_id, day, window_id),
            "starts_at": starts_at,
            "ends_at": ends_at,
            "week": week,
            "weekly_cap": weekly_cap,
            "application": as_json(application),
            "draw_at": draw_at,
            "now": now,
            "date": day.isoformat(),
            "opens_priority": opens[0],
            "opens_standard": opens[1],
            "categories": list(categories),
            "market_categories": list(market_categories),
        }
        raw = await self._apply(keys=keys, args=[as_json(inputs)])
        parts = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
        return Decision(parts[0], parts[1] if len(parts) > 1 else "", tuple(parts[2:]))

    async def withdraw(self, market_id: str, day: date, window_id: str, vendor_id: str) -> Decision:
        """Withdraw a vendor's application while the draw is open."""
        draw, apps, _ = self._keys(market_id, day, window_id)
        keys = [
            draw,
            apps,
            self.keys.vendor_applications(vendor_id),
            self.keys.vendor_draw_history(vendor_id),
        ]
        raw = await self._withdraw(keys=keys, args=[vendor_id, member(market_id, day, window_id)])
        parts = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
        return Decision(parts[0], parts[1] if len(parts) > 1 else "")

    async def applications(self, market_id: str, day: date, window_id: str) -> dict[str, Any]:
        """Vendor id -> application of a draw."""
        _, apps, _ = self._keys(market_id, day, window_id)
        raw = await self.redis.hgetall(apps)
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def application(
        self, market_id: str, day: date, window_id: str, vendor_id: str
    ) -> dict[str, Any] | None:
        """One vendor's application, or ``None``."""
        _, apps, _ = self._keys(market_id, day, window_id)
        raw = await self.redis.hget(apps, vendor_id)
        return json.loads(raw) if raw else None

    async def vendor_history(self, vendor_id: str, limit: int = 50) -> list[str]:
        """The draws a vendor applied to, latest draw first (``market|date|window``)."""
        raw = await self.redis.zrevrange(self.keys.vendor_draw_history(vendor_id), 0, limit - 1)
        return [x.decode() for x in raw]

    async def step(
        self,
        market_id: str,
        day: date,
        window_id: str,
        *,
        from_state: str,
        to_state: str,
        fields: dict[str, str] | None = None,
        event: OutboxEvent | None = None,
    ) -> int:
        """Move the draw ``from_state`` → ``to_state`` once (1), already past it (0), or not
        there yet (-1)."""
        draw, _, _ = self._keys(market_id, day, window_id)
        inputs: dict[str, Any] = {"from": from_state, "to": to_state, "fields": fields or {}}
        if event is not None:
            inputs["event"] = event.fields()
        return int(await self._step(keys=[draw, self.keys.outbox()], args=[as_json(inputs)]))

    async def record_outcome(
        self, market_id: str, day: date, window_id: str, vendor_id: str, outcome: dict[str, Any]
    ) -> None:
        """What the draw gave a vendor (a booking, nothing, or void with a reason)."""
        _, _, outcomes = self._keys(market_id, day, window_id)
        await self.redis.hset(outcomes, vendor_id, as_json(outcome))

    async def outcomes(self, market_id: str, day: date, window_id: str) -> dict[str, Any]:
        """Vendor id -> outcome of a drawn draw."""
        _, _, outcomes = self._keys(market_id, day, window_id)
        raw = await self.redis.hgetall(outcomes)
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def forget_applications(
        self, market_id: str, day: date, window_id: str, vendor_ids: list[str]
    ) -> None:
        """A completed draw no longer counts in its applicants' pending applications."""
        name = member(market_id, day, window_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for vendor_id in vendor_ids:
                pipe.hdel(self.keys.vendor_applications(vendor_id), name)
            await pipe.execute()

    async def due(self, until: float, limit: int = 100) -> list[str]:
        """Draws whose time has come and that are not done yet (``market|date|window``)."""
        raw = await self.redis.zrangebyscore(self.keys.draws_due(), "-inf", until, 0, limit)
        return [x.decode() for x in raw]

    async def undue(self, name: str) -> None:
        """Take a completed draw off the due set."""
        await self.redis.zrem(self.keys.draws_due(), name)

    async def lease(self, market_id: str, day: date, window_id: str, owner: str, ms: int) -> bool:
        """Take or extend the lease of running a draw (one replica at a time)."""
        key = self.keys.draw_lock(market_id, day.isoformat(), window_id)
        if await self.redis.set(key, owner, nx=True, px=ms):
            return True
        held = await self.redis.get(key)
        if held is not None and held.decode() == owner:
            await self.redis.pexpire(key, ms)
            return True
        return False

    async def release(self, market_id: str, day: date, window_id: str, owner: str) -> None:
        """Give the lease back if this owner holds it."""
        key = self.keys.draw_lock(market_id, day.isoformat(), window_id)
        held = await self.redis.get(key)
        if held is not None and held.decode() == owner:
            await self.redis.delete(key)
