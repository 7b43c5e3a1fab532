"""Vendor registration and login."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

from allocation.adapters.vendor_store import VendorStore
from allocation.domain.errors import rejected
from allocation.domain.model import PriorityGroup, Vendor
from allocation.service_layer.bookings import new_id
from contracts.catalogue import Category
from stallkit.clock import Clock

#: Verified against when the phone is unknown, so timing does not reveal registered numbers.
_DUMMY_HASH_INPUT = "timing-equaliser"


@dataclass(frozen=True)
class RegisterVendor:
    """Command: register a vendor."""

    name: str
    phone: str
    password: str
    priority_group: PriorityGroup
    categories: frozenset[Category]
    health_certificate_expires: date | None


class VendorService:
    """Registers vendors and checks their passwords."""

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

    async def register(self, command: RegisterVendor) -> Vendor:
        """Create the vendor; ``phone_taken`` if the number is registered."""
        vendor = Vendor(
            id=new_id("vd"),
            name=command.name,
            phone=command.phone,
            priority_group=command.priority_group,
            categories=command.categories,
            health_certificate_expires=command.health_certificate_expires,
            suspended_until=None,
            created_at=self.clock.now(),
        )
        password_hash = await run_in_threadpool(self.hasher.hash, command.password)
        if not await self.store.create(vendor, password_hash):
            raise rejected("phone_taken")
        return vendor

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
