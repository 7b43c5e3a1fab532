"""Attacks on the public surface: costly unknown ids and a login brute force in parallel.

(Malformed dates and hostile text are cases of the table in test_allocation_bad_input.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import pytest

from allocation.adapters.catalogue_store import CatalogueStore
from contracts.catalogue import Category, Stall
from stallkit.auth import Role
from stalltest.allocation import MONDAY, RunningAllocation

pytestmark = pytest.mark.integration

#: The Redis commands of the request being served (None outside requests: background tasks).
_COMMANDS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "commands", default=None
)


@contextlib.contextmanager
def redis_commands_per_request(svc: RunningAllocation) -> Iterator[list[list[str]]]:
    """Record the Redis commands each HTTP request sends (one list per request, in order).

    Requests are told apart from the service's background work (outbox relay, catalogue
    refresher, consumers) by a context variable set as each ``/v1`` request enters the app.
    """
    per_request: list[list[str]] = []
    app = svc.asgi._application
    redis: Any = svc.allocation.catalogue.redis
    real_execute, real_pipeline = redis.execute_command, redis.pipeline
    stack = app.middleware_stack or app.build_middleware_stack()

    async def counted_stack(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            commands: list[str] = []
            per_request.append(commands)
            _COMMANDS.set(commands)
        await stack(scope, receive, send)

    async def execute_command(*args: Any, **options: Any) -> Any:
        commands = _COMMANDS.get()
        if commands is not None:
            commands.append(str(args[0]))
        return await real_execute(*args, **options)

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        real_run = pipe.execute

        async def execute(*run_args: Any, **run_kwargs: Any) -> Any:
            commands = _COMMANDS.get()
            if commands is not None:
                commands.extend(str(c[0][0]) for c in pipe.command_stack)
            return await real_run(*run_args, **run_kwargs)

        pipe.execute = execute
        return pipe

    app.middleware_stack = counted_stack
    redis.execute_command, redis.pipeline = execute_command, pipeline
    try:
        yield per_request
    finally:
        del redis.execute_command, redis.pipeline
        app.middleware_stack = stack


# --- unknown ids -----------------------------------------------------------------------------

UNKNOWN = [
    ("none", "GET", "/v1/markets/ZZ-99", None),
    ("none", "GET", "/v1/markets/ZZ-99/availability", None),
    ("none", "GET", f"/v1/markets/ZZ-99/availability?date={MONDAY.isoformat()}", None),
    ("vendor", "POST", "/v1/bookings",
     {"stall_id": "XZ-91-Z999", "date": MONDAY.isoformat(), "window_id": "evening"}),
    ("admin", "GET", "/v1/admin/stalls/XZ-91-Z999/code", None),
    ("admin", "POST", "/v1/admin/stalls/XZ-91-Z999/code", None),
    ("admin", "DELETE", "/v1/admin/stalls/XZ-91-Z999/code", None),
    ("admin", "GET", "/v1/stalls/XZ-91-Z999/code.svg", None),
]  # fmt: skip


async def test_an_unknown_id_costs_a_handful_of_redis_commands(svc: RunningAllocation) -> None:
    tokens = {"none": None, "vendor": svc.token("vd_nobody"), "admin": svc.token("a", Role.ADMIN)}
    answers = []
    with redis_commands_per_request(svc) as per_request:
        for who, method, path, body in UNKNOWN:
            async with svc.client(tokens[who]) as c:
                headers = {"Idempotency-Key": "k"} if method == "POST" else {}
                answers.append(await c.request(method, path, json=body, headers=headers))
    assert [(r.status_code, r.json()["code"]) for r in answers] == [
        (404, "market_not_found")
    ] * 3 + [(404, "stall_not_found")] * 5
    assert len(per_request) == len(UNKNOWN)
    # The small catalogue alone is 41 reads to reload (1,500 for Zhuhai's); a miss is one GET
    # of the catalogue version.
    for (_, method, path, _), commands in zip(UNKNOWN, per_request, strict=True):
        assert 1 <= len(commands) <= 3, (method, path, commands)  # seen, and few


async def test_a_stall_another_replica_added_is_found_without_a_forced_reload(
    svc: RunningAllocation,
) -> None:
    """The cheap miss still sees catalogue changes: the version moved, so the view reloads."""
    other_replica = CatalogueStore(
        svc.allocation.catalogue.redis,
        svc.allocation.keys,
        source="/services/allocation",
        now=svc.clock.now,
    )
    stall = Stall(id="XZ-91-C099", market_id="XZ-91", category=Category.DAILY_GOODS)
    assert await other_replica.put_stall(stall)
    async with svc.client(svc.token("admin", Role.ADMIN)) as admin:
        response = await admin.get("/v1/admin/stalls/XZ-91-C099/code")
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1


# --- login brute force -----------------------------------------------------------------------

PHONE = "13722223333"


async def test_parallel_wrong_passwords_are_checked_at_most_the_limit(
    svc: RunningAllocation,
) -> None:
    limit = svc.settings.max_login_failures
    await svc.register(
        name="黄阿姨", phone=PHONE, password="the-right-password", categories=["services"]
    )
    async with svc.client() as c:

        async def attempt(n: int) -> int:
            response = await c.post(
                "/v1/auth/token", data={"username": PHONE, "password": f"guess-{n:04d}"}
            )
            return response.status_code

        statuses = await asyncio.gather(*(attempt(n) for n in range(60)))
        after = await c.post(
            "/v1/auth/token", data={"username": PHONE, "password": "the-right-password"}
        )
    assert statuses.count(401) == limit  # the only passwords verified
    assert statuses.count(429) == 60 - limit
    assert after.status_code == 429  # locked, even with the right password
