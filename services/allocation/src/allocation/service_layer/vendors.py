"""Vendor login, limited so that guessing a password stays impractical and nobody can lock a
vendor out by knowing the number (registration: ``registrations``).

Every attempt is counted before its password is checked, by one Redis script on every counter
it counts on or on none, so concurrent attempts on several replicas cannot all pass a check
first. A refused attempt (``too_many_attempts``, with the seconds until the counter that refused
it resets, sent as ``Retry-After``) checks no password and costs one Redis call. The counters
(defaults; each a setting, see :class:`~allocation.adapters.logins.LoginLimits`):

- (client address, number), 10 per 15 minutes: what a vendor who mistypes meets, and what one
  attacker gets at one number. A right password from that address clears it. An attacker's
  failures count at the attacker's address, never at the vendor's: counting per number alone
  let anyone who knew a vendor's number lock the vendor out on a market day.
- client address, whatever the number, 50 per 15 minutes: one address trying many numbers
  (credential stuffing). Above the per-number count so that vendors behind one carrier NAT
  address who mistype now and then are not refused; a success gives its attempt back.
- number, from addresses it has not logged in from, 60 per hour: the ceiling on a guess spread
  over many addresses, 1,440 a day (the per-number lockout allowed 960). One address alone
  cannot reach it: its 10 per 15 minutes touch at most 5 such periods of any hour, 50 attempts
  (the settings refuse limits where one address could reach it). Many addresses can; then
  only addresses unknown to the number are refused, for the rest of the hour:
- the last 5 addresses a number logged in from in 30 days are known to it: an attempt from one
  counts on its (address, number) counter only. A vendor at a usual address logs in however many
  others guess; one on a new address (a phone's carrier address changes) waits out the hour of
  a distributed attack, the one lockout left, which costs the attacker many addresses an hour.

The per-address counters are also the login route's per-client rate limit: every wrong
password counts, for a registered number or not; a right one is given back (it proves the
account is the caller's), so vendors sharing an address do not use up each other's attempts.
Client addresses are what :func:`allocation.entrypoints.deps.client_address` makes of the
connection (an IPv6 caller counts by its /64).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

from allocation.adapters.logins import LoginAttempts
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.errors import rejected
from stallkit.clock import Clock

#: Verified against when the phone is unknown, so timing does not reveal registered numbers.
_DUMMY_HASH_INPUT = "timing-equaliser"


class VendorService:
    """Checks vendors' passwords."""

    def __init__(
        self, store: VendorStore, attempts: LoginAttempts, clock: Clock, hasher: PasswordHasher
    ):
        self.store = store
        self.attempts = attempts
        self.clock = clock
        self.hasher = hasher
        self._dummy_hash = hasher.hash(_DUMMY_HASH_INPUT)

    async def authenticate(self, phone: str, password: str, address: str) -> str:
        """The vendor id for correct credentials from client ``address``, else
        ``invalid_credentials``, or ``too_many_attempts`` once a limit is reached."""
        now = self.clock.now().timestamp()
        known = await self.attempts.known(phone, address, now)
        wait = await self.attempts.reserve(phone, address, known=known)
        if wait is not None:
            raise rejected("too_many_attempts", retry_after_seconds=wait)
        vendor_id = await self.store.id_for_phone(phone)
        stored = await self.store.password_hash(vendor_id) if vendor_id else None
        try:
            await run_in_threadpool(self.hasher.verify, stored or self._dummy_hash, password)
            if vendor_id is None or stored is None:
                raise VerificationError
        except (VerificationError, InvalidHashError):
            raise rejected("invalid_credentials") from None  # the reserved attempt stays counted
        await self.attempts.succeeded(phone, address, now, known=known)
        return vendor_id
