"""Fixtures of the reporting service's tests: a fake Redis for unit tests, a served app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from faststream.kafka import KafkaBroker

from reporting.config import ReportingSettings
from stallkit.messaging import ensure_topics, make_broker
from stallkit.procs import free_port
from stallkit.testing.plugin import Isolation


class FakeRedis:
    """The few Redis calls the shared runtime makes (dedup marks, readiness, close)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def exists(self, *keys: str) -> int:
        return sum(1 for k in keys if k in self.values)

    async def set(self, key: str, value: Any, ex: int | None = None) -> bool:
        self.values[key] = value
        return True

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@pytest.fixture
def fake_redis() -> FakeRedis:
    """A fresh in-memory stand-in for Redis."""
    return FakeRedis()


@pytest.fixture
async def reporting_settings(isolation: Isolation) -> ReportingSettings:
    """Settings pointing at the session's broker and Redis, with this test's prefixes."""
    settings = ReportingSettings(**{k.lower(): v for k, v in isolation.env().items()})
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    return settings


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Any], Awaitable[httpx.AsyncClient]]]:
    """Serve ASGI apps with uvicorn on free ports; each call returns a client once ready."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(app: Any) -> httpx.AsyncClient:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        task = asyncio.create_task(server.serve())
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0)
        running.append((server, task, client))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            if task.done():
                task.result()
                raise RuntimeError("server exited before it was ready")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return client
            await asyncio.sleep(0.1)
        raise TimeoutError("service did not become ready")

    yield start
    for server, task, client in reversed(running):
        await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """Poll an async check until it returns something truthy, or fail after ``timeout``."""

    async def wait(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = await check()
            if result:
                return result
            if loop.time() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s (last: {result!r})")
            await asyncio.sleep(0.1)

    return wait


@pytest.fixture
async def publisher(reporting_settings: ReportingSettings) -> AsyncIterator[KafkaBroker]:
    """A started broker of the test side, to publish events the service consumes."""
    broker = make_broker(reporting_settings.model_copy(update={"service_name": "allocation"}))
    await broker.start()
    yield broker
    await broker.stop()
