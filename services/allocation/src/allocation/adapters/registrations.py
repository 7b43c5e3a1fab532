"""Registrations waiting for their phone code, and the registration rate limits, in Redis.

A registration is a hash that expires: what the account will be made of (name, phone, password
hash, the identity's digest, the claims stated) and the digest of the code sent by SMS. A
registration for a number that is already registered is stored the same way with no code, so
that no code completes it and it answers exactly like any other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources

from allocation.adapters.keys import Keys
from allocation.adapters.limits import Limit, Limits
from allocation.domain.eligibility import ClaimKind
from stallkit.redis_client import RedisClient


def _script(name: str) -> str:
    return resources.files("allocation.adapters").joinpath("lua", name).read_text()


def code_digest(registration_id: str, code: str) -> str:
    """What is stored of a registration's code (and compared with a code given)."""
    return hashlib.sha256(f"{registration_id}:{code}".encode()).hexdigest()


@dataclass(frozen=True)
class PendingRegistration:
    """A registration as stored until its code is given (``code_digest`` '' for none)."""

    id: str
    code_digest: str
    name: str
    phone: str
    password_hash: str
    identity_digest: str
    claims: tuple[tuple[ClaimKind, str], ...]
    created_ts: float

    def fields(self) -> dict[str, str]:
        """The stored hash."""
        return {
            "code": self.code_digest,
            "name": self.name,
            "phone": self.phone,
            "password": self.password_hash,
            "identity": self.identity_digest,
            "claims": json.dumps([[k.value, v] for k, v in self.claims]),
            "created_ts": repr(self.created_ts),
            "attempts": "0",
        }

    @classmethod
    def of(cls, registration_id: str, fields: dict[str, str]) -> PendingRegistration:
        """A registration from its stored hash."""
        return cls(
            id=registration_id,
            code_digest=fields["code"],
            name=fields["name"],
            phone=fields["phone"],
            password_hash=fields["password"],
            identity_digest=fields["identity"],
            claims=tuple((ClaimKind(k), v) for k, v in json.loads(fields["claims"])),
            created_ts=float(fields["created_ts"]),
        )


@dataclass(frozen=True)
class CodeCheck:
    """What checking a code found: ``ok`` with the registration, ``invalid`` with the attempts
    left, or ``not_found``."""

    outcome: str
    registration: PendingRegistration | None = None
    attempts_left: int = 0


class RegistrationStore:
    """Pending registrations and how many were made per client address and phone number."""

    def __init__(self, redis: RedisClient, keys: Keys):
        self.redis = redis
        self.keys = keys
        self.limits = Limits(redis)
        self._check = redis.register_script(_script("registration_code.lua"))

    async def count(
        self, address: str, phone: str, *, per_address: int, per_phone: int, period_seconds: int
    ) -> int | None:
        """Count a registration for both its address and its number (atomically, both or
        neither); ``None`` if counted, else the seconds until the limit that refused it resets."""
        return await self.limits.count(
            Limit(self.keys.registrations_counted("address", address), per_address, period_seconds),
            Limit(self.keys.registrations_counted("phone", phone), per_phone, period_seconds),
        )

    async def put(self, registration: PendingRegistration, ttl_seconds: int) -> None:
        """Store a registration until ``ttl_seconds`` have passed."""
        key = self.keys.registration(registration.id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=registration.fields())
        pipe.expire(key, ttl_seconds)
        await pipe.execute()

    async def check_code(self, registration_id: str, code: str, max_attempts: int) -> CodeCheck:
        """Check ``code``: a right one consumes the registration, a wrong one uses an attempt
        (the last one voids it)."""
        key = self.keys.registration(registration_id)
        raw = await self._check(keys=[key], args=[code_digest(registration_id, code), max_attempts])
        outcome = raw[0].decode()
        if outcome == "ok":
            flat = [x.decode() for x in raw[1]]
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            return CodeCheck("ok", PendingRegistration.of(registration_id, fields))
        if outcome == "invalid":
            return CodeCheck("invalid", attempts_left=int(raw[1]))
        return CodeCheck("not_found")
