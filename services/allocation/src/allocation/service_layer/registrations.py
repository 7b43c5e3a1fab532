"""Registration: one account per identity, the phone proven with a one-time code first.

``register`` counts the request against its client address and its phone number, refuses an
identity that already has an account, hashes the password and stores a registration that waits
``ttl`` for its code, sent by SMS. For a number that is already registered it does the same work
and answers the same, but texts the number's owner a notice instead of a code, and its
registration can never be completed: the answer never tells whether a number is registered.
``complete`` checks the code (a few attempts, then the registration is void) and creates the
account: no eligibility counts yet, the priority group, categories and health certificate stated
are claims for staff to verify.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from argon2 import PasswordHasher
from starlette.concurrency import run_in_threadpool

from allocation.adapters.registrations import PendingRegistration, RegistrationStore, code_digest
from allocation.adapters.sms import SmsGateway, SmsNotSent
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.eligibility import Claim, ClaimStatus, in_order, stated_claims
from allocation.domain.errors import rejected
from allocation.domain.identity import identity_digest
from allocation.domain.model import PriorityGroup, Vendor
from allocation.service_layer.bookings import new_id
from contracts.catalogue import Category
from stallkit.clock import Clock

#: How long a refused sender is told to wait when the SMS could not be handed over.
SMS_RETRY_SECONDS = 30


@dataclass(frozen=True)
class RegistrationPolicy:
    """The registration settings."""

    identity_salt: str
    ttl_seconds: int = 600
    code_attempts: int = 5
    per_address: int = 10
    per_phone: int = 3
    period_seconds: int = 3600


@dataclass(frozen=True)
class RegisterVendor:
    """Command: start a vendor's registration."""

    name: str
    phone: str
    password: str
    identity_number: str
    priority_group: PriorityGroup
    categories: frozenset[Category]
    health_certificate_expires: date | None
    client_address: str


@dataclass(frozen=True)
class RegistrationStarted:
    """What the registrant is told, whatever the number: the id to complete it with."""

    registration_id: str
    expires_in: int


def code_text(code: str, minutes: int) -> str:
    """The SMS that carries a registration code."""
    return (
        f"【珠海便民市场】您的注册验证码为 {code}，{minutes} 分钟内有效，请勿告诉他人。"
        f" Your registration code is {code}, valid for {minutes} minutes."
    )


def notice_text() -> str:
    """The SMS telling a number's owner that someone tried to register it again."""
    return (
        "【珠海便民市场】有人尝试用您的手机号注册摊贩账号。该号码已有账号，可直接登录；"
        "如非本人操作，请忽略本短信。 Someone tried to register your number; it already has an "
        "account, so just log in. If it was not you, ignore this message."
    )


class RegistrationService:
    """Starts and completes vendor registrations."""

    def __init__(
        self,
        store: RegistrationStore,
        vendors: VendorStore,
        sms: SmsGateway,
        clock: Clock,
        hasher: PasswordHasher,
        policy: RegistrationPolicy,
    ):
        self.store = store
        self.vendors = vendors
        self.sms = sms
        self.clock = clock
        self.hasher = hasher
        self.policy = policy

    async def register(self, command: RegisterVendor) -> RegistrationStarted:
        """Start a registration; ``too_many_registrations`` or ``identity_taken`` if refused."""
        p = self.policy
        wait = await self.store.count(
            command.client_address, command.phone, per_address=p.per_address,
            per_phone=p.per_phone, period_seconds=p.period_seconds,
        )  # fmt: skip
        if wait is not None:
            raise rejected("too_many_registrations", retry_after_seconds=wait)
        identity = identity_digest(p.identity_salt, command.identity_number)
        if await self.vendors.identity_taken(identity):
            raise rejected("identity_taken")
        # From here on a registered number and a new one take the same steps (the same work,
        # so the same time): hash, look up, store, text. Only what is stored and sent differs.
        password_hash = await run_in_threadpool(self.hasher.hash, command.password)
        taken = await self.vendors.id_for_phone(command.phone) is not None
        registration_id = new_id("rg")
        code = f"{secrets.randbelow(1_000_000):06d}"
        registration = PendingRegistration(
            id=registration_id,
            code_digest="" if taken else code_digest(registration_id, code),
            name=command.name,
            phone=command.phone,
            password_hash=password_hash,
            identity_digest=identity,
            claims=tuple(
                stated_claims(
                    command.priority_group,
                    command.categories,
                    command.health_certificate_expires,
                )
            ),
            created_ts=self.clock.now().timestamp(),
        )
        await self.store.put(registration, p.ttl_seconds)
        text = notice_text() if taken else code_text(code, p.ttl_seconds // 60)
        try:
            await self.sms.send(command.phone, text)
        except SmsNotSent:
            raise rejected("sms_unavailable", retry_after_seconds=SMS_RETRY_SECONDS) from None
        return RegistrationStarted(registration_id, p.ttl_seconds)

    async def complete(self, registration_id: str, code: str) -> tuple[Vendor, list[Claim]]:
        """Create the account if ``code`` is the one sent; ``invalid_code`` (attempts left) or
        ``registration_not_found`` if not; ``identity_taken`` / ``phone_taken`` if another
        account got there first."""
        check = await self.store.check_code(registration_id, code, self.policy.code_attempts)
        if check.outcome == "invalid":
            raise rejected("invalid_code", attempts_left=check.attempts_left)
        if check.registration is None:
            raise rejected("registration_not_found")
        registration = check.registration
        now = self.clock.now()
        vendor = Vendor(
            id=new_id("vd"),
            name=registration.name,
            phone=registration.phone,
            priority_group=PriorityGroup.NONE,  # nothing counts until staff verify it
            categories=frozenset(),
            health_certificate_expires=None,
            suspended_until=None,
            created_at=now,
        )
        claims = [
            Claim(id=new_id("cl"), kind=kind, value=value, status=ClaimStatus.CLAIMED,
                  claimed_at=now)
            for kind, value in registration.claims
        ]  # fmt: skip
        refused = await self.vendors.open_account(
            vendor,
            registration.password_hash,
            claims=claims,
            identity_digest=registration.identity_digest,
        )
        if refused is not None:
            raise rejected(refused)
        return vendor, in_order(claims)
