"""Vendor login (registration: ``registrations``)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

from allocation.adapters.vendor_store import VendorStore
from allocation.domain.errors import rejected
from stallkit.clock import Clock

#: Verified against when the phone is unknown, so timing does not reveal registered numbers.
_DUMMY_HASH_INPUT = "timing-equaliser"


class VendorService:
    """Checks vendors' passwords."""

    def __init__(
        self,
        store: VendorStore,
        clock: Clock,
        hasher: PasswordHasher,
        *,
        max_login_failures: int = 10,
        lockout_seconds: int = 15 * 60,
    ):
        self.store = store
        self.clock = clock
        self.hasher = hasher
        self.max_login_failures = max_login_failures
        self.lockout_seconds = lockout_seconds
        self._dummy_hash = hasher.hash(_DUMMY_HASH_INPUT)

    async def authenticate(self, phone: str, password: str) -> str:
        """The vendor id for correct credentials, else ``invalid_credentials``.

        After ``max_login_failures`` wrong passwords for a number, logins to it are refused
        (``too_many_attempts``) until the lockout period has passed.
        """
        # The attempt is counted before the password is checked, atomically: however many
        # logins arrive at once, at most max_login_failures passwords are ever verified.
        reserved = await self.store.reserve_login_attempt(
            phone, self.max_login_failures, self.lockout_seconds
        )
        if not reserved:
            raise rejected("too_many_attempts", retry_after_seconds=self.lockout_seconds)
        vendor_id = await self.store.id_for_phone(phone)
        stored = await self.store.password_hash(vendor_id) if vendor_id else None
        try:
            await run_in_threadpool(self.hasher.verify, stored or self._dummy_hash, password)
            if vendor_id is None or stored is None:
                raise VerificationError
        except (VerificationError, InvalidHashError):
            raise rejected("invalid_credentials") from None  # the reserved attempt stays counted
        await self.store.clear_login_failures(phone)  # a success releases every attempt
        return vendor_id
