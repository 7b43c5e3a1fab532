"""Vendors in Redis. Personal data (name, phone) stays here: never in events or logs."""

from __future__ import annotations

from datetime import UTC, date, datetime

from redis.asyncio import Redis

from allocation.adapters.keys import Keys
from allocation.domain.model import PriorityGroup, Vendor
from contracts.catalogue import Category

#: KEYS[1] the phone number's attempt counter; ARGV limit, period in seconds. 1 if reserved.
_RESERVE_LOGIN_ATTEMPT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return 1
"""


class VendorStore:
    """Create and read vendors; phone numbers are unique."""

    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._reserve = redis.register_script(_RESERVE_LOGIN_ATTEMPT)

    async def create(self, vendor: Vendor, password_hash: str) -> bool:
        """Store a new vendor; ``False`` if the phone number is taken."""
        if not await self.redis.set(self.keys.phone(vendor.phone), vendor.id, nx=True):
            return False
        await self.redis.hset(
            self.keys.vendor(vendor.id),
            mapping={
                "id": vendor.id,
                "name": vendor.name,
                "phone": vendor.phone,
                "password": password_hash,
                "priority_group": vendor.priority_group.value,
                "priority": "1" if vendor.priority_group.is_priority else "0",
                "categories": ",".join(sorted(c.value for c in vendor.categories)),
                "health_until": vendor.health_certificate_expires.isoformat()
                if vendor.health_certificate_expires
                else "",
                "suspended_until": "0",
                "created_ts": str(vendor.created_at.timestamp()),
            },
        )
        return True

    async def id_for_phone(self, phone: str) -> str | None:
        """The vendor id registered with ``phone``."""
        raw = await self.redis.get(self.keys.phone(phone))
        return raw.decode() if raw else None

    async def password_hash(self, vendor_id: str) -> str | None:
        """The stored password hash."""
        raw = await self.redis.hget(self.keys.vendor(vendor_id), "password")
        return raw.decode() if raw else None

    async def get(self, vendor_id: str) -> Vendor | None:
        """One vendor, or ``None``."""
        raw = await self.redis.hgetall(self.keys.vendor(vendor_id))
        if not raw:
            return None
        r = {k.decode(): v.decode() for k, v in raw.items()}
        suspended = float(r.get("suspended_until") or 0)
        return Vendor(
            id=r["id"],
            name=r["name"],
            phone=r["phone"],
            priority_group=PriorityGroup(r["priority_group"]),
            categories=frozenset(Category(c) for c in r["categories"].split(",") if c),
            health_certificate_expires=date.fromisoformat(r["health_until"])
            if r.get("health_until")
            else None,
            suspended_until=datetime.fromtimestamp(suspended, tz=UTC) if suspended else None,
            created_at=datetime.fromtimestamp(float(r["created_ts"]), tz=UTC),
        )

    async def login_failures(self, phone: str) -> int:
        """Login attempts counted for ``phone`` in the current period (successes clear them)."""
        return int(await self.redis.get(self.keys.login_failures(phone)) or 0)

    async def reserve_login_attempt(self, phone: str, limit: int, period_seconds: int) -> bool:
        """Count a login attempt before its password is checked; ``False`` once ``limit`` are.

        Atomic (one script), so concurrent logins cannot all pass the check before any is
        counted. The count expires ``period_seconds`` after the first attempt of a period.
        """
        key = self.keys.login_failures(phone)
        return bool(await self._reserve(keys=[key], args=[limit, period_seconds]))

    async def clear_login_failures(self, phone: str) -> None:
        """Forget failed logins after a successful one."""
        await self.redis.delete(self.keys.login_failures(phone))
