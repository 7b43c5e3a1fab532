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

    def __init__(self, store: VendorStore, clock: Clock, hasher: PasswordHasher):
        self.store = store
        self.clock = clock
        self.hasher = hasher
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
        """The vendor id for correct credentials, else ``invalid_credentials``."""
        vendor_id = await self.store.id_for_phone(phone)
        stored = await self.store.password_hash(vendor_id) if vendor_id else None
        try:
            await run_in_threadpool(self.hasher.verify, stored or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            raise rejected("invalid_credentials") from None
        if vendor_id is None or stored is None:
            raise rejected("invalid_credentials")
        return vendor_id
