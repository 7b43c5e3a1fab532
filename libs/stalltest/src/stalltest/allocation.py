"""Test support for allocation: the service running against a real broker and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from faststream_fastapi import FastStreamAPI
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from allocation.app import create_app
from allocation.bootstrap import Allocation, bootstrap
from allocation.config import AllocationSettings
from allocation.domain.identity import check_character
from allocation.domain.model import PriorityGroup, Vendor
from contracts.catalogue import Catalogue, Category, District, Location, Market, MarketWindow, Stall
from stallctl import procs
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ, Clock
from stalltest.plugin import Infra, Isolation, RedisClusterInfo
from stalltest.tokens import dev_token

_HASH = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("password123")
_counter = itertools.count(1)
_identities = itertools.count(1)


# --- registration over HTTP --------------------------------------------------------------------


def identity_number(n: int | None = None) -> str:
    """A resident identity number with a right check digit: the ``n``-th, or a fresh one."""
    serial = next(_identities) if n is None else n
    first_17 = f"440402{19800101 + serial // 1000 % 9000:08d}{serial % 1000:03d}"
    return first_17 + check_character(first_17)


def sms_messages(outbox: Path, phone: str) -> list[dict[str, str]]:
    """The text messages the development SMS outbox holds for ``phone``, oldest first."""
    if not outbox.exists():
        return []
    lines = outbox.read_text(encoding="utf-8").splitlines()
    return [m for m in (json.loads(line) for line in lines if line.strip()) if m["phone"] == phone]


def sms_code(outbox: Path, phone: str) -> str:
    """The registration code of the newest text message to ``phone`` (it is written before the
    registration is answered)."""
    messages = sms_messages(outbox, phone)
    assert messages, f"no text message to {phone} in {outbox}"
    found = re.search(r"\b(\d{6})\b", messages[-1]["text"])
    assert found, f"the newest text to {phone} carries no code: {messages[-1]['text']}"
    return found.group(1)


@dataclass(frozen=True)
class RegisteredVendor:
    """A vendor registered over HTTP, logged in."""

    id: str
    token: str
    phone: str
    password: str
    profile: dict[str, Any]


def registration_body(**fields: Any) -> dict[str, Any]:
    """A ``POST /v1/vendors`` body: ``fields`` with a fresh identity number unless given."""
    return {"identity_number": identity_number(), **fields}


async def register_vendor(
    client: httpx.AsyncClient, outbox: Path, **fields: Any
) -> RegisteredVendor:
    """Register end to end over HTTP as a vendor does: ``POST /v1/vendors``, the code from the
    SMS outbox, ``POST /v1/vendors/verify``, then log in. ``fields`` are the registration's
    (``name``, ``phone``, ``password``, ``categories``, ...; an identity number is made up)."""
    body = registration_body(**fields)
    started = await client.post("/v1/vendors", json=body)
    assert started.status_code == 202, started.text
    code = sms_code(outbox, body["phone"])
    verify = {"registration_id": started.json()["registration_id"], "code": code}
    verified = await client.post("/v1/vendors/verify", json=verify)
    assert verified.status_code == 201, verified.text
    login = await client.post(
        "/v1/auth/token", data={"username": body["phone"], "password": body["password"]}
    )
    assert login.status_code == 200, login.text
    profile: dict[str, Any] = verified.json()
    return RegisteredVendor(
        profile["id"], login.json()["access_token"], body["phone"], body["password"], profile
    )


def register_vendor_sync(client: httpx.Client, outbox: Path, **fields: Any) -> RegisteredVendor:
    """:func:`register_vendor` with a blocking client (against the embedded system)."""
    body = registration_body(**fields)
    started = client.post("/v1/vendors", json=body)
    assert started.status_code == 202, started.text
    verify = {"registration_id": started.json()["registration_id"],
              "code": sms_code(outbox, body["phone"])}  # fmt: skip
    verified = client.post("/v1/vendors/verify", json=verify)
    assert verified.status_code == 201, verified.text
    login = client.post(
        "/v1/auth/token", data={"username": body["phone"], "password": body["password"]}
    )
    assert login.status_code == 200, login.text
    profile: dict[str, Any] = verified.json()
    return RegisteredVendor(
        profile["id"], login.json()["access_token"], body["phone"], body["password"], profile
    )


async def verify_claims(
    staff: httpx.AsyncClient, vendor_id: str, *, expires: date | None = None
) -> dict[str, Any]:
    """Verify every pending claim of a vendor over HTTP (``staff``: a district or admin
    client); returns the vendor's claims as staff see them after."""
    listed = await staff.get(f"/v1/vendors/{vendor_id}/claims")
    assert listed.status_code == 200, listed.text
    after: dict[str, Any] = listed.json()
    for claim in after["claims"]:
        if claim["status"] != "claimed":
            continue
        decision: dict[str, Any] = {"decision": "verified", "document_ref": f"doc-{claim['id']}"}
        if expires is not None:
            decision["expires"] = expires.isoformat()
        decided = await staff.post(
            f"/v1/vendors/{vendor_id}/claims/{claim['id']}/decision", json=decision
        )
        assert decided.status_code == 200, decided.text
        after = decided.json()
    return after


def small_catalogue() -> Catalogue:
    """Two evening markets (XZ-91: 20 cooked/daily stalls, XZ-92: 10) and a morning one."""
    evening = MarketWindow(
        id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
        start=time(17, 30), end=time(22, 30),
    )  # fmt: skip
    late = MarketWindow(
        id="late", name_zh="晚市", name_en="Late", days=[1, 2, 3, 4, 5, 6, 7],
        start=time(19, 0), end=time(23, 0),
    )  # fmt: skip
    morning = MarketWindow(
        id="morning", name_zh="早市", name_en="Morning", days=[6, 7],
        start=time(6, 0), end=time(10, 0),
    )  # fmt: skip
    loc = Location(lat=22.27, lon=113.57)
    markets = [
        Market(id="XZ-91", district=District.XIANGZHOU, name_zh="测试夜市", name_en="Test Night",
               location=loc, zones=[Category.COOKED_FOOD, Category.DAILY_GOODS], windows=[evening]),
        Market(id="XZ-92", district=District.XIANGZHOU, name_zh="测试晚市", name_en="Test Late",
               location=loc, zones=[Category.DAILY_GOODS], windows=[late]),
        Market(id="DM-93", district=District.DOUMEN, name_zh="测试早市", name_en="Test Morning",
               location=loc, zones=[Category.FRESH_PRODUCE], windows=[morning]),
    ]  # fmt: skip
    stalls = [Stall(id=f"XZ-91-A{i:03d}", market_id="XZ-91", category=Category.COOKED_FOOD)
              for i in range(1, 11)]  # fmt: skip
    stalls += [Stall(id=f"XZ-91-C{i:03d}", market_id="XZ-91", category=Category.DAILY_GOODS)
               for i in range(1, 11)]  # fmt: skip
    stalls += [Stall(id=f"XZ-92-C{i:03d}", market_id="XZ-92", category=Category.DAILY_GOODS)
               for i in range(1, 11)]  # fmt: skip
    stalls += [Stall(id=f"DM-93-B{i:03d}", market_id="DM-93", category=Category.FRESH_PRODUCE)
               for i in range(1, 6)]  # fmt: skip
    return Catalogue(markets=markets, stalls=stalls)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local Asia/Shanghai instant."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MARKET_TZ)


def set_now(clock: Clock, when: datetime) -> None:
    """Move the service clock so that it reads ``when`` now."""
    clock.offset_seconds = 0.0
    clock.speed = 1.0
    clock.offset_seconds = when.timestamp() - clock.timestamp()


@dataclass
class RunningAllocation:
    """The allocation service running on a local port, with handles for tests."""

    url: str
    asgi: FastStreamAPI
    allocation: Allocation
    settings: AllocationSettings
    admin_token: str

    @property
    def clock(self) -> Clock:
        """The service clock (tests move it)."""
        return self.allocation.clock

    @property
    def sms_outbox(self) -> Path:
        """The file the service's text messages go to."""
        return self.settings.sms_outbox

    async def register(self, **fields: Any) -> RegisteredVendor:
        """A vendor registered over HTTP (code from the SMS outbox) and logged in; its claims
        wait for staff (see :meth:`verified`)."""
        async with self.client() as c:
            return await register_vendor(c, self.sms_outbox, **fields)

    async def verified(self, vendor_id: str, *, expires: date | None = None) -> dict[str, Any]:
        """Verify every pending claim of the vendor as an administrator, over HTTP."""
        async with self.client(self.admin_token) as admin:
            return await verify_claims(admin, vendor_id, expires=expires)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client, authenticated with ``token`` if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def token(self, sub: str, role: Role = Role.VENDOR, ttl: int = 30 * 86400) -> str:
        """A development-key token, issued long ago (tests move the clock back and forth)."""
        now = self.clock.now()
        return dev_token(role, sub, now=now, ttl_seconds=ttl, issued_at=now - timedelta(days=365))

    async def vendor(
        self,
        *,
        priority: PriorityGroup = PriorityGroup.NONE,
        categories: frozenset[Category] = frozenset(Category),
        health_until: date | None = date(2099, 1, 1),
    ) -> tuple[str, str]:
        """A vendor created directly in the store (fast), its eligibility verified; (id, token)."""
        n = next(_counter)
        vendor = Vendor(
            id=f"vd_test{n:06d}",
            name=f"测试摊贩{n}",
            phone=f"139{n:08d}",
            priority_group=priority,
            categories=categories,
            health_certificate_expires=health_until,
            suspended_until=None,
            created_at=self.clock.now(),
        )
        assert await self.allocation.vendors.create(vendor, _HASH)
        return vendor.id, self.token(vendor.id)


def sms_outbox_for(isolation: Isolation) -> Path:
    """A development SMS outbox file of the test's own."""
    name = isolation.redis_prefix.strip(":") or "default"
    return Path(tempfile.gettempdir()) / "stalltest-sms" / f"{name}.jsonl"


def settings_for(isolation: Isolation, **overrides: Any) -> AllocationSettings:
    """Allocation settings pointing at the session's broker and Redis (and an SMS outbox file
    of the test's own)."""
    env = {k.lower(): v for k, v in isolation.env().items()}
    env["sms_outbox"] = str(sms_outbox_for(isolation))
    return AllocationSettings.model_validate({**env, **overrides})


@contextlib.asynccontextmanager
async def serve(
    settings: AllocationSettings, *, port: int | None = None
) -> AsyncIterator[RunningAllocation]:
    """Run the allocation app in this event loop until the block ends (on ``port``, or a free
    one)."""
    asgi = create_app(settings)
    port = port or procs.free_port()
    server = uvicorn.Server(
        uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    allocation: Allocation = asgi._application.state.allocation
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "allocation did not start"
        now, year = allocation.clock.now(), timedelta(days=365)
        admin = dev_token(Role.ADMIN, "admin", now=now, ttl_seconds=year.days * 86400,
                          issued_at=now - year)  # fmt: skip
        yield RunningAllocation(f"http://127.0.0.1:{port}", asgi, allocation, settings, admin)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def make_settings(isolation: Isolation) -> Callable[..., AllocationSettings]:
    """Factory of settings for this test's isolation, with overrides."""
    return lambda **overrides: settings_for(isolation, **overrides)


@contextlib.asynccontextmanager
async def serve_seeded(
    isolation: Isolation, *, port: int | None = None, **overrides: Any
) -> AsyncIterator[RunningAllocation]:
    """The allocation service with the small catalogue loaded, clock at 10:00 on a Monday.

    First come, first served unless ``lottery=True`` is passed: most tests are of the booking
    rules, which hold the same after a draw; the lottery has its own tests.
    """
    settings = settings_for(isolation, **{"lottery": False, **overrides})
    async with serve(settings, port=port) as running:
        async with running.client(running.admin_token) as admin:
            response = await admin.put(
                "/v1/admin/catalogue", json=small_catalogue().model_dump(mode="json")
            )
            assert response.status_code == 200, response.text
        set_now(running.clock, local(MONDAY, 10))
        yield running


@pytest.fixture
async def svc(isolation: Isolation) -> AsyncIterator[RunningAllocation]:
    """The allocation service with the small catalogue loaded, clock at 10:00 on a Monday."""
    async with serve_seeded(isolation) as running:
        yield running


#: A Monday some weeks ahead of the real date; tests move the clock relative to it.
MONDAY = date(2026, 12, 7)
TUESDAY = MONDAY + timedelta(days=1)


@pytest.fixture(params=["single", "cluster"])
async def store(request: pytest.FixtureRequest, infra: Infra) -> AsyncIterator[Any]:
    """A client of the session's redis-server, or of the three-master Redis Cluster."""
    client: Redis | RedisCluster
    if request.param == "cluster":
        cluster: RedisClusterInfo = request.getfixturevalue("redis_cluster")
        client = RedisCluster.from_url(cluster.url)
    else:
        client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def allocation(store: Any, isolation: Isolation) -> Allocation:
    """Allocation's stores and services on ``store``, the small catalogue loaded, Monday 10:00.

    First come, first served (the lottery off): these test the booking rules; the lottery,
    which only decides who books before the draw, has its own tests.
    """
    built = bootstrap(settings_for(isolation, lottery=False), Clock(), store)
    await built.catalogue.import_catalogue(small_catalogue())
    set_now(built.clock, local(MONDAY, 10))
    return built
