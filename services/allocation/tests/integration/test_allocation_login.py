"""Login: the OAuth2 password flow and its limits. Wrong passwords are counted per number from
one client address, per address and, for addresses a number never logged in from, per number;
an attacker who knows a vendor's number cannot lock the vendor out. Client addresses come from
``X-Forwarded-For``, which the test server trusts from 127.0.0.1 as a server trusts its ingress.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from stalltest.allocation import RunningAllocation, register_vendor, serve_seeded
from stalltest.plugin import Isolation

pytestmark = pytest.mark.integration

PHONE = "13655554444"
PASSWORD = "right-password"
VENDOR_HOME = "203.0.113.10"  # where the vendor registered and logged in first
VENDOR_NEW = "203.0.113.77"  # a network the vendor never used (a phone's carrier address)

#: Small limits so that reaching them is quick: 3 per number from one address and 5 per
#: address a quarter of an hour, 16 an hour per number from unknown addresses (the least the
#: settings take with 3: one address alone makes at most 3 x 5 = 15 in an hour).
SMALL = {
    "max_login_failures": 3,
    "login_failures_per_address": 5,
    "login_failures_per_number": 16,
}


@pytest.fixture
async def small(isolation: Isolation) -> AsyncIterator[RunningAllocation]:
    """The service with the small login limits."""
    async with serve_seeded(isolation, **SMALL) as running:
        yield running


async def register(svc: RunningAllocation) -> None:
    """The vendor registers (and logs in) from ``VENDOR_HOME``."""
    async with svc.client() as c:
        c.headers["X-Forwarded-For"] = VENDOR_HOME
        await register_vendor(
            c,
            svc.sms_outbox,
            name="李师傅",
            phone=PHONE,
            password=PASSWORD,
            categories=["services"],
        )


async def login(
    c: httpx.AsyncClient, password: str, *, phone: str = PHONE, address: str
) -> httpx.Response:
    """``POST /v1/auth/token`` from client ``address``."""
    return await c.post(
        "/v1/auth/token",
        data={"username": phone, "password": password},
        headers={"X-Forwarded-For": address},
    )


def outcome(response: httpx.Response) -> tuple[int, str | None]:
    """Status and problem code of an answer."""
    code = None if response.status_code == 200 else response.json()["code"]
    return response.status_code, code


def retry_after(response: httpx.Response, most: int) -> int:
    """The refusal's ``Retry-After``, checked: whole seconds, within the period, as the body."""
    assert outcome(response) == (429, "too_many_attempts")
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= most
    assert response.json()["retry_after_seconds"] == seconds
    return seconds


async def test_wrong_passwords_refuse_that_address_for_the_number_until_a_success_or_the_period(
    svc: RunningAllocation,
) -> None:
    """The default limits as a vendor meets them: 10 wrong passwords from the phone refuse that
    phone's logins to the number for 15 minutes; a success before clears the count."""
    await register(svc)
    async with svc.client() as c:
        assert outcome(await login(c, "wrong-1", address=VENDOR_HOME)) == (
            401,
            "invalid_credentials",
        )
        assert outcome(await login(c, PASSWORD, address=VENDOR_HOME)) == (200, None)  # clears
        for i in range(svc.settings.max_login_failures):
            wrong = await login(c, f"wrong-{i}", address=VENDOR_HOME)
            assert outcome(wrong) == (401, "invalid_credentials")
        refused = await login(c, PASSWORD, address=VENDOR_HOME)  # even the right password
        retry_after(refused, svc.settings.login_lockout_minutes * 60)
        # Other numbers from the same address are not refused.
        other = await login(c, "whatever", phone="13655550000", address=VENDOR_HOME)
        assert outcome(other) == (401, "invalid_credentials")

        # The period has passed.
        attempts = svc.allocation.vendor_service.attempts
        await attempts.redis.delete(attempts.keys.login_attempts("pair", VENDOR_HOME, PHONE))
        assert outcome(await login(c, PASSWORD, address=VENDOR_HOME)) == (200, None)


async def test_an_attacker_who_knows_the_number_cannot_lock_the_vendor_out(
    svc: RunningAllocation,
) -> None:
    """The attack of the issue, with the default limits: 200 wrong passwords for a vendor's
    number from one address on a market day. The attacker is refused after 10; the vendor logs
    in, from home and from a network they never used."""
    await register(svc)
    attacker = "198.51.100.66"
    async with svc.client() as c:
        answers = [await login(c, f"guess-{n:03d}", address=attacker) for n in range(200)]
        mine_at_home = await login(c, PASSWORD, address=VENDOR_HOME)
        mine_elsewhere = await login(c, PASSWORD, address=VENDOR_NEW)
        attacker_again = await login(c, PASSWORD, address=attacker)
    limit = svc.settings.max_login_failures
    assert [outcome(r) for r in answers] == [(401, "invalid_credentials")] * limit + [
        (429, "too_many_attempts")
    ] * (200 - limit)
    retry_after(answers[-1], svc.settings.login_lockout_minutes * 60)
    assert outcome(mine_at_home) == (200, None)
    assert outcome(mine_elsewhere) == (200, None)
    # Even the right password is refused from the attacker's address (no password is checked
    # there any more, so a refusal tells nothing about it).
    assert outcome(attacker_again) == (429, "too_many_attempts")


async def test_one_address_trying_many_numbers_is_limited_and_others_are_not(
    small: RunningAllocation,
) -> None:
    """Credential stuffing: a client trying a password on many numbers gets 5 wrong ones a
    quarter of an hour; other addresses, and vendors logging in right from a shared address,
    are not held back."""
    await register(small)
    stuffer = "198.51.100.7"
    async with small.client() as c:
        tried = [
            await login(c, "123456789", phone=f"1390000{n:04d}", address=stuffer) for n in range(8)
        ]
        assert [outcome(r) for r in tried] == [(401, "invalid_credentials")] * 5 + [
            (429, "too_many_attempts")
        ] * 3
        retry_after(tried[-1], 15 * 60)
        elsewhere = await login(c, "123456789", phone="13900000001", address="198.51.100.8")
        assert outcome(elsewhere) == (401, "invalid_credentials")

        # Many vendors behind one carrier NAT address: right passwords use up no limit.
        nat = "100.64.0.1"
        for _ in range(3 * SMALL["login_failures_per_address"]):
            assert outcome(await login(c, PASSWORD, address=nat)) == (200, None)
        for n in range(4):
            typo = await login(c, "typo-typo", phone=f"1370000{n:04d}", address=nat)
            assert outcome(typo) == (401, "invalid_credentials")


async def test_a_guess_spread_over_many_addresses_stops_at_the_ceiling_but_not_for_the_vendor(
    small: RunningAllocation,
) -> None:
    """Six addresses guess 3 times each at one number: after 16 guesses in the hour, addresses
    the number never logged in from are refused (the vendor on a new network too, until the
    hour is out); the vendor logs in from home, where they logged in before."""
    await register(small)
    async with small.client() as c:
        guesses = [
            await login(c, f"guess-{bot}-{n}", address=f"198.51.100.{bot}")
            for bot in range(1, 7)
            for n in range(3)
        ]
        late_bot = await login(c, "guess-late", address="198.51.100.99")
        new_network = await login(c, PASSWORD, address=VENDOR_NEW)
        at_home = await login(c, PASSWORD, address=VENDOR_HOME)
    assert [outcome(r) for r in guesses] == [(401, "invalid_credentials")] * 16 + [
        (429, "too_many_attempts")
    ] * 2
    retry_after(late_bot, 60 * 60)
    retry_after(new_network, 60 * 60)
    assert outcome(at_home) == (200, None)


async def test_parallel_guesses_from_many_addresses_check_at_most_the_ceiling(
    small: RunningAllocation,
) -> None:
    """60 guesses at once from 60 addresses, on several connections: every limit is counted
    before the password is checked, so at most 16 passwords are ever checked."""
    await register(small)
    async with small.client() as c:
        answers = await asyncio.gather(
            *(login(c, f"guess-{n:02d}", address=f"192.0.2.{n + 1}") for n in range(60))
        )
    statuses = [r.status_code for r in answers]
    assert statuses.count(401) == SMALL["login_failures_per_number"]
    assert statuses.count(429) == 60 - SMALL["login_failures_per_number"]


async def test_addresses_of_one_ipv6_subscriber_count_as_one(small: RunningAllocation) -> None:
    """An IPv6 subscriber holds a whole /64: new addresses in it do not buy new attempts."""
    async with small.client() as c:
        answers = [
            await login(c, "123456789", phone=f"1360000{n:04d}", address=f"2001:db8:5:6::{n:x}")
            for n in range(1, 8)
        ]
        other_subscriber = await login(
            c, "123456789", phone="13600000001", address="2001:db8:5:7::1"
        )
    assert [outcome(r)[0] for r in answers] == [401] * 5 + [429] * 2
    assert outcome(other_subscriber) == (401, "invalid_credentials")
