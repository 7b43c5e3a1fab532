"""Rate limits in Redis: one request counted against several limits at once, or refused.

Each limit is a counter that expires a period after the first request it counted (a fixed
window). One script checks every counter and counts the request on all of them or on none, so
concurrent requests on several replicas cannot all pass a check before any is counted, and a
request refused by one limit uses up none of the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from stallkit.redis_client import RedisClient


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


@dataclass(frozen=True)
class Limit:
    """At most ``most`` requests counted on ``key`` per period of ``period_seconds``."""

    key: str
    most: int
    period_seconds: int


class Limits:
    """Counts requests against limits (every key given must carry allocation's hash tag)."""

    def __init__(self, redis: RedisClient):
        self._count = redis.register_script(_script("count_within_limits.lua"))

    async def count(self, *limits: Limit) -> int | None:
        """Count one request against every limit (all or none); ``None`` if counted, else the
        seconds until the limit that refused it resets."""
        keys = [limit.key for limit in limits]
        args = [limit.most for limit in limits] + [limit.period_seconds for limit in limits]
        counted, wait = await self._count(keys=keys, args=args)
        return None if int(counted) else max(1, int(wait))
