"""Each service's OpenAPI document tells the truth: schemathesis against the running services.

The four services run once for the module against the session's real broker and Redis, sharing
one topic and key prefix like a real deployment; allocation holds a small catalogue (market
XZ-03, whose ids are the documents' examples), a registered vendor, a booking and a suspension,
whose ids path parameters take half of the time. Then ``schemathesis run`` (deterministic
generation) checks every operation of each service with no token, and every operation that
takes a token with a token of each role: no 5xx, and every status, content type, header
(``Allow`` of a 405 included) and body as documented.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from allocation.app import create_app as create_allocation
from allocation.config import AllocationSettings
from contracts.catalogue import Catalogue
from contracts.seed import load_catalogue
from inspection.app import create_app as create_inspection
from inspection.config import InspectionSettings
from reporting.app import create_app as create_reporting
from reporting.config import ReportingSettings
from stallctl import procs
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ
from stallkit.messaging import ensure_topics
from stalltest.allocation import register_vendor, verify_claims
from stalltest.plugin import Infra, Isolation
from stalltest.tokens import bearer, dev_token
from windows.app import create_app as create_windows
from windows.config import WindowsSettings

pytestmark = pytest.mark.integration

SERVICES = ("allocation", "windows", "inspection", "reporting")
ROLES = (Role.VENDOR, Role.PATROL, Role.DISTRICT, Role.ADMIN, None)
MARKET = "XZ-03"

#: Checks left out, and why:
#: - positive_data_acceptance: a request valid by the schema is still refused by the state
#:   (an id nobody created is 404, a booked stall 409, the wrong role 403);
#: - use_after_free: DELETE cancels a booking or lifts a suspension, which stay readable
#:   with their new state by design, so a later 200 for the same id is no bug.
EXCLUDED_CHECKS = ("positive_data_acceptance", "use_after_free")
#: Password hashing as cheap as allowed: registrations and logins are many here.
CHEAP = {"argon2_time_cost": 1, "argon2_memory_kib": 8 * 1024}
#: Selects the operations that take a bearer token (FastAPI names the scheme after HTTPBearer).
TAKES_A_TOKEN = "/security/0/HTTPBearer == []"
#: Endless streams (the district feeds' SSE): a valid request never ends, so each case would
#: wait out the request timeout. Their answers, statuses and event schema are tested in
#: services/reporting/tests/integration/test_reporting_feeds_sse.py.
STREAMS = r"^/v1/feeds/[^/]+/events$"
#: Cases per operation and phase: enough to reach every documented status, few enough that
#: the whole module stays within about two minutes on two cores.
MAX_EXAMPLES = 12


@dataclass
class System:
    """The four services' base URLs, and ids that exist in them."""

    urls: dict[str, str]
    vendor_id: str
    booking_id: str
    suspension_id: str
    claim_ids: list[str]

    def token(self, role: Role) -> str:
        """A token of ``role`` as its real issuer makes it (development keys)."""
        if role is Role.VENDOR:
            return dev_token(role, self.vendor_id)
        district = None if role is Role.ADMIN else "xiangzhou"
        return dev_token(role, f"{role.value}-1", district=district)

    def config(self) -> str:
        """schemathesis.toml: path parameters take a real id half of the time."""
        real = {
            "market_id": [MARKET],
            "stall_id": [f"{MARKET}-A017", f"{MARKET}-B001"],
            "booking_id": [self.booking_id],
            "suspension_id": [self.suspension_id],
            "vendor_id": [self.vendor_id],
            "claim_id": self.claim_ids,
        }
        lines = []
        for name, values in real.items():
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
        lines.append("[parameters]")
        lines += [
            f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in real
        ]
        return "\n".join(lines) + "\n"


def small_catalogue() -> Catalogue:
    """The seed's market XZ-03 and its stalls only."""
    seed = load_catalogue()
    return Catalogue(
        markets=[m for m in seed.markets if m.id == MARKET],
        stalls=[s for s in seed.stalls if s.market_id == MARKET],
    )


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop until ready; yield its base URL."""
    port = procs.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            for _ in range(300):
                if task.done():
                    task.result()
                    raise RuntimeError("server exited before it was ready")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError(f"{url} did not become ready")
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _seed(urls: dict[str, str], sms_outbox: Path) -> System:
    """Catalogue, a vendor (registered with the texted code, logged in, its claims verified),
    a booking and a suspension."""
    allocation, windows = urls["allocation"], urls["windows"]
    admin = bearer(dev_token(Role.ADMIN, "admin-1"))
    tomorrow = datetime.now(MARKET_TZ).date() + timedelta(days=1)
    async with httpx.AsyncClient(base_url=allocation, timeout=30) as client:
        catalogue = small_catalogue().model_dump(mode="json")
        imported = await client.put("/v1/admin/catalogue", json=catalogue, headers=admin)
        assert imported.status_code == 200, imported.text
        registered = await register_vendor(
            client, sms_outbox, name="陈小梅", phone="13900001111", password="password123",
            categories=["cooked_food", "daily_goods"], health_certificate_expires="2099-01-01",
        )  # fmt: skip
        staff = httpx.AsyncClient(base_url=allocation, timeout=30, headers=admin)
        async with staff:
            claims = await verify_claims(staff, registered.id)
        vendor = {**bearer(registered.token), "Idempotency-Key": uuid.uuid4().hex}
        booking = {"stall_id": f"{MARKET}-A017", "date": tomorrow.isoformat(),
                   "window_id": "evening"}  # fmt: skip
        booked = await client.post("/v1/bookings", json=booking, headers=vendor)
        assert booked.status_code == 201, booked.text
        later = (tomorrow + timedelta(days=2)).isoformat()
        suspension = {"first_date": later, "last_date": later, "reason": "台风 Typhoon"}
        suspended = await client.post(
            f"/v1/admin/markets/{MARKET}/suspensions", json=suspension, headers=admin
        )
        assert suspended.status_code == 201, suspended.text
    async with httpx.AsyncClient(base_url=windows, timeout=5) as client:
        for _ in range(300):  # the catalogue reaches windows through Kafka
            if (await client.get(f"/v1/markets/{MARKET}/schedule")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError("windows never saw the catalogue")
    return System(
        urls=urls,
        vendor_id=registered.id,
        booking_id=booked.json()["id"],
        suspension_id=suspended.json()["suspension_id"],
        claim_ids=[c["id"] for c in claims["claims"]],
    )


@pytest.fixture(scope="module")
async def system(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    """The four services on one prefix, with allocation seeded; once for the module."""
    isolation = Isolation.fresh(infra)
    env = {k.lower(): v for k, v in isolation.env().items()} | {"log_level": "WARNING"}
    sms_outbox = tmp_path_factory.mktemp("sms") / "outbox.jsonl"
    texts = {"sms_outbox": str(sms_outbox)}
    await ensure_topics(infra.kafka_bootstrap, isolation.topic_prefix)
    factories: dict[str, Callable[[], Any]] = {
        "allocation": lambda: create_allocation(
            AllocationSettings.model_validate(env | CHEAP | texts)
        ),
        "windows": lambda: create_windows(WindowsSettings.model_validate(env)),
        "inspection": lambda: create_inspection(InspectionSettings.model_validate(env)),
        "reporting": lambda: create_reporting(ReportingSettings.model_validate(env)),
    }
    async with contextlib.AsyncExitStack() as stack:
        urls = {
            name: await stack.enter_async_context(serving(make()))
            for name, make in factories.items()
        }
        yield await _seed(urls, sms_outbox)


def _schemathesis(url: str, token: str | None, config: Path) -> list[str]:
    args = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{url}/openapi.json",
        "--checks", "all", "--exclude-checks", ",".join(EXCLUDED_CHECKS),
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic", "--no-shrink", "--workers", "1",
        "--request-timeout", "10", "--no-color", "--output-truncate", "false",
        "--exclude-path-regex", STREAMS,
    ]  # fmt: skip
    if token is not None:
        # Operations that take no token behave alike whatever is sent: the no-token run has them.
        args += ["--header", f"Authorization: Bearer {token}", "--include-by", TAKES_A_TOKEN]
    return args


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "no-token")
@pytest.mark.parametrize("service", SERVICES)
async def test_service_answers_as_its_openapi_document_says(
    system: System, service: str, role: Role | None, tmp_path: Path
) -> None:
    token = system.token(role) if role else None
    config = tmp_path / "schemathesis.toml"
    config.write_text(system.config(), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        *_schemathesis(system.urls[service], token, config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,  # whatever schemathesis keeps, it keeps out of the repository
    )
    output, _ = await proc.communicate()  # the services answer from this event loop meanwhile
    report = output.decode(errors="replace")
    who = f"a {role.value} token" if role else "no token"
    assert proc.returncode == 0, f"{service} with {who}, schemathesis says:\n{report}"
