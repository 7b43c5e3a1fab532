"""Login attempts in Redis: the counters that limit password guessing, and the client addresses
each number logged in from (see :mod:`allocation.service_layer.vendors` for the limits' design).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from allocation.adapters.keys import Keys
from allocation.adapters.limits import Limit, Limits
from stallkit.redis_client import RedisClient


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


@dataclass(frozen=True)
class LoginLimits:
    """How many login attempts are counted, where, and for how long."""

    #: Attempts for one number from one client address in ``address_period_seconds``.
    per_number_from_address: int = 10
    #: Attempts from one client address, whatever the numbers, in ``address_period_seconds``.
    per_address: int = 50
    address_period_seconds: int = 15 * 60
    #: Attempts for one number from addresses it has not logged in from, in
    #: ``number_period_seconds``.
    per_number: int = 60
    number_period_seconds: int = 60 * 60
    #: How long an address a number logged in from stays known (after its last success).
    known_address_seconds: int = 30 * 86400
    #: How many known addresses a number keeps (the most recent).
    known_addresses: int = 5


class LoginAttempts:
    """Counts login attempts before their password is checked, and what a success releases."""

    def __init__(self, redis: RedisClient, keys: Keys, limits: LoginLimits):
        self.redis = redis
        self.keys = keys
        self.limits = limits
        self.counters = Limits(redis)
        self._succeeded = redis.register_script(_script("login_succeeded.lua"))

    def _counted_on(self, phone: str, address: str, *, known: bool) -> list[Limit]:
        k, lim = self.keys, self.limits
        period = lim.address_period_seconds
        pair = Limit(k.login_attempts("pair", address, phone), lim.per_number_from_address, period)
        if known:
            return [pair]
        return [
            pair,
            Limit(k.login_attempts("address", address), lim.per_address, period),
            Limit(k.login_attempts("number", phone), lim.per_number, lim.number_period_seconds),
        ]

    async def known(self, phone: str, address: str, now: float) -> bool:
        """Whether ``phone`` logged in from ``address`` within the known-address lifetime."""
        last = await self.redis.zscore(self.keys.login_addresses(phone), address)
        return last is not None and last >= now - self.limits.known_address_seconds

    async def reserve(self, phone: str, address: str, *, known: bool) -> int | None:
        """Count an attempt before its password is checked; ``None`` if counted, else the
        seconds until the limit that refused it resets (atomic: see :class:`Limits`)."""
        return await self.counters.count(*self._counted_on(phone, address, known=known))

    async def succeeded(self, phone: str, address: str, now: float, *, known: bool) -> None:
        """After a right password: remember the address, clear the number's failures from it,
        and give its attempt back to the wider counters (``known`` as when it was reserved)."""
        counted = self._counted_on(phone, address, known=known)
        keys = [self.keys.login_addresses(phone), *(limit.key for limit in counted)]
        lim = self.limits
        await self._succeeded(
            keys=keys, args=[address, now, lim.known_addresses, lim.known_address_seconds]
        )

    async def counted(self, scope: str, *values: str) -> int:
        """Attempts counted in the current period on one counter (``Keys.login_attempts``)."""
        return int(await self.redis.get(self.keys.login_attempts(scope, *values)) or 0)
