"""Composition root: wires settings, stores and use cases; tests can swap any part."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from allocation.adapters.catalogue_store import CatalogueStore
from allocation.adapters.draw_store import DrawStore
from allocation.adapters.keys import Keys
from allocation.adapters.ledger import Ledger
from allocation.adapters.logins import LoginAttempts, LoginLimits
from allocation.adapters.registrations import RegistrationStore
from allocation.adapters.sms import FileSmsOutbox, HttpSmsGateway, SmsGateway
from allocation.adapters.vendor_store import VendorStore
from allocation.config import AllocationSettings
from allocation.domain import stall_codes
from allocation.domain.rules import Policy
from allocation.service_layer.bookings import BookingService
from allocation.service_layer.draws import DrawService
from allocation.service_layer.eligibility import EligibilityService
from allocation.service_layer.markets import MarketService
from allocation.service_layer.registrations import RegistrationPolicy, RegistrationService
from allocation.service_layer.vendors import VendorService
from stallkit.clock import MARKET_TZ, Clock
from stallkit.redis_client import RedisClient


def policy_from(settings: AllocationSettings) -> Policy:
    """The booking policy the settings describe."""
    hour, minute = (int(x) for x in settings.priority_hold_release.split(":"))
    draw_hour, draw_minute = (int(x) for x in settings.draw_time.split(":"))
    return Policy(
        weekly_cap=settings.weekly_cap,
        priority_horizon_days=settings.priority_horizon_days,
        standard_horizon_days=settings.standard_horizon_days,
        priority_hold_share=settings.priority_hold_share,
        priority_hold_release_minute=hour * 60 + minute,
        free_cancel_seconds=settings.free_cancel_hours * 3600,
        check_in_before_seconds=settings.check_in_before_minutes * 60,
        check_in_after_seconds=settings.check_in_after_minutes * 60,
        no_show_limit=settings.no_show_limit,
        no_show_period_seconds=settings.no_show_period_days * 86400,
        no_show_suspension_seconds=settings.no_show_suspension_days * 86400,
        lottery=settings.lottery,
        draw_days_before=settings.draw_days_before,
        draw_minute=draw_hour * 60 + draw_minute,
    )


def registration_policy_from(settings: AllocationSettings) -> RegistrationPolicy:
    """The registration rules the settings describe."""
    return RegistrationPolicy(
        identity_salt=settings.identity_salt,
        ttl_seconds=settings.registration_ttl_minutes * 60,
        code_attempts=settings.registration_code_attempts,
        per_address=settings.registrations_per_address,
        per_phone=settings.registrations_per_phone,
        period_seconds=settings.registration_period_minutes * 60,
    )


def login_limits_from(settings: AllocationSettings) -> LoginLimits:
    """The login limits the settings describe."""
    return LoginLimits(
        per_number_from_address=settings.max_login_failures,
        per_address=settings.login_failures_per_address,
        address_period_seconds=settings.login_lockout_minutes * 60,
        per_number=settings.login_failures_per_number,
        number_period_seconds=settings.login_number_period_minutes * 60,
        known_address_seconds=settings.login_known_address_days * 86400,
    )


def sms_gateway_from(settings: AllocationSettings, clock: Clock) -> SmsGateway:
    """The gateway if one is set (production), else the development outbox file."""
    if settings.sms_gateway_url is not None:
        return HttpSmsGateway(str(settings.sms_gateway_url), settings.sms_gateway_token)
    return FileSmsOutbox(settings.sms_outbox, clock)


@dataclass
class Allocation:
    """Everything the allocation entrypoints use."""

    settings: AllocationSettings
    clock: Clock
    keys: Keys
    policy: Policy
    catalogue: CatalogueStore
    ledger: Ledger
    vendors: VendorStore
    vendor_service: VendorService
    registrations: RegistrationService
    eligibility: EligibilityService
    bookings: BookingService
    markets: MarketService
    draws: DrawService
    signing_key: Ed25519PrivateKey


def bootstrap(settings: AllocationSettings, clock: Clock, redis: RedisClient) -> Allocation:
    """Build the allocation service from its settings, clock and Redis client."""
    keys = Keys(settings.redis_prefix)
    policy = policy_from(settings)
    source = f"/services/{settings.service_name}"
    catalogue = CatalogueStore(redis, keys, source=source, now=clock.now)
    ledger = Ledger(redis, keys)
    vendors = VendorStore(redis, keys, today=lambda: clock.now().astimezone(MARKET_TZ).date())
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib, parallelism=1
    )
    bookings = BookingService(
        ledger,
        catalogue,
        clock,
        policy,
        source=source,
        idempotency_ttl_seconds=settings.idempotency_ttl_hours * 3600,
        attempts_per_minute=settings.booking_attempts_per_minute,
    )
    markets = MarketService(
        catalogue,
        ledger,
        bookings,
        clock,
        policy,
        source=source,
        max_suspension_days=settings.max_suspension_days,
    )
    draws = DrawService(
        DrawStore(redis, keys), bookings, catalogue, vendors, ledger, clock, policy, source=source
    )

    async def run_draw(market_id: str, day: date, window_id: str) -> None:
        await draws.run(market_id, day, window_id)

    bookings.run_draw = run_draw
    return Allocation(
        settings=settings,
        clock=clock,
        keys=keys,
        policy=policy,
        catalogue=catalogue,
        ledger=ledger,
        vendors=vendors,
        vendor_service=VendorService(
            vendors, LoginAttempts(redis, keys, login_limits_from(settings)), clock, hasher
        ),
        registrations=RegistrationService(
            RegistrationStore(redis, keys),
            vendors,
            sms_gateway_from(settings, clock),
            clock,
            hasher,
            registration_policy_from(settings),
        ),
        eligibility=EligibilityService(vendors, clock, source=source),
        bookings=bookings,
        markets=markets,
        draws=draws,
        signing_key=stall_codes.private_key_from_seed(settings.stall_code_signing_key),
    )
