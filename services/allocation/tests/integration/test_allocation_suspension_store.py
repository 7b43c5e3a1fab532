"""Suspension and login-attempt scripts against a single Redis and a three-master Cluster.

No HTTP: the service layer drives the scripts as in production (every key in KEYS, one slot),
and the outbox entries they write are read back and checked against their contracts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from allocation.bootstrap import Allocation
from allocation.domain.errors import Rejected
from allocation.service_layer.markets import DeclareSuspension
from stalltest.allocation import MONDAY, TUESDAY

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
THURSDAY = MONDAY + timedelta(days=3)


async def events(allocation: Allocation, check: Callable[[bytes], Any], name: str) -> list[Any]:
    """The outbox's events of one type, checked against their contract, oldest first."""
    entries = await allocation.catalogue.redis.xrange(allocation.keys.outbox())
    found = [check(fields[b"value"]) for _, fields in entries]
    return [e for e in found if e.type.endswith(f".{name}.v1")]


async def test_declare_and_lift_write_dates_records_and_events_together(
    allocation: Allocation, contract_check: Callable[[bytes], Any]
) -> None:
    markets = allocation.markets
    typhoon = await markets.declare(
        DeclareSuspension("XZ-91", TUESDAY, THURSDAY, "台风", idempotency_key="k1")
    )
    works = await markets.declare(DeclareSuspension("XZ-91", WEDNESDAY, WEDNESDAY, "施工"))
    replay = await markets.declare(
        DeclareSuspension("XZ-91", TUESDAY, THURSDAY, "台风", idempotency_key="k1")
    )
    with pytest.raises(Rejected) as reused:
        await markets.declare(
            DeclareSuspension("XZ-91", TUESDAY, TUESDAY, "台风", idempotency_key="k1")
        )
    echo = await markets.declare(
        DeclareSuspension(
            "XZ-91", TUESDAY, THURSDAY, "台风", origin="windows",
            suspension_id=typhoon.suspension.id,
        )
    )  # fmt: skip

    assert reused.value.code == "idempotency_key_reused"
    assert (replay.replayed, replay.suspension.id) == (True, typhoon.suspension.id)
    assert echo.suspension.origin == "admin"  # the declared one, not a second record
    assert len(await markets.suspensions_of("XZ-91")) == 2
    reasons = [await markets.suspensions.reason_on("XZ-91", d) for d in (TUESDAY, WEDNESDAY)]
    assert reasons == ["台风", "施工"]

    lifted = await markets.lift("XZ-91", works.suspension.id, announce=True)
    again = await markets.lift("XZ-91", works.suspension.id, announce=True)

    assert (lifted.already_lifted, lifted.reopened_dates) == (False, 0)
    assert again.already_lifted
    # Wednesday is still the typhoon's: the reason of the suspension in force comes back.
    assert await markets.suspensions.reason_on("XZ-91", WEDNESDAY) == "台风"
    declared = await events(allocation, contract_check, "suspension.declared")
    assert [e.data["suspension_id"] for e in declared] == [
        typhoon.suspension.id,
        works.suspension.id,
    ]
    (lift_event,) = await events(allocation, contract_check, "suspension.lifted")
    assert lift_event.data["suspension_id"] == works.suspension.id

    await markets.lift("XZ-91", typhoon.suspension.id, announce=False)
    for day in (TUESDAY, WEDNESDAY, THURSDAY):
        assert await markets.suspensions.reason_on("XZ-91", day) is None
    assert len(await events(allocation, contract_check, "suspension.lifted")) == 1


async def test_login_attempts_are_reserved_up_to_the_limit(allocation: Allocation) -> None:
    """The login counters (defaults: 10 per number from an address, 50 per address, 60 per
    number from unknown addresses) are counted together or not at all, and a success clears
    the address's count for the number and gives its attempt back to the wider ones."""
    attempts = allocation.vendor_service.attempts
    phone, address, now = "13900001111", "198.51.100.1", allocation.clock.now().timestamp()
    reserved = [await attempts.reserve(phone, address, known=False) for _ in range(12)]
    assert reserved[:10] == [None] * 10
    assert all(wait is not None and 1 <= wait <= 15 * 60 for wait in reserved[10:])
    # The refused two were counted nowhere.
    assert await attempts.counted("pair", address, phone) == 10
    assert await attempts.counted("address", address) == 10
    assert await attempts.counted("number", phone) == 10

    assert not await attempts.known(phone, address, now)
    await attempts.succeeded(phone, address, now, known=False)
    assert await attempts.known(phone, address, now)
    assert await attempts.counted("pair", address, phone) == 0
    assert await attempts.counted("address", address) == 9
    assert await attempts.counted("number", phone) == 9
    # From a known address an attempt counts on its own (address, number) counter only.
    assert await attempts.reserve(phone, address, known=True) is None
    assert await attempts.counted("pair", address, phone) == 1
    assert await attempts.counted("number", phone) == 9
    # Known for the known-address lifetime, then no more.
    later = now + allocation.settings.login_known_address_days * 86400 + 1
    assert not await attempts.known(phone, address, later)
