"""Pytest fixtures: a real Kafka-protocol broker and a real redis-server on free ports.

Both start once per session; each test gets its own topic and key prefix, so tests never see
each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream_fastapi._internal.get_dependant import mark_faststream_decorated
from redis.asyncio import Redis

import contracts  # noqa: F401 - claim the name before importlib-mode test collection does
from contracts.topics import DEAD_LETTER
from stallctl import procs
from stallkit.messaging import ensure_topics, make_broker
from stallkit.service import ServiceParts, make_clock
from stallkit.settings import CommonSettings
from stallkit.tasks import cancel_and_wait


@dataclass(frozen=True)
class Infra:
    """Addresses of the session's broker and Redis."""

    kafka_bootstrap: str
    kafka_port: int
    redis_url: str
    redis_port: int


@pytest.fixture(scope="session", autouse=True)
async def _reap_leftover_tasks() -> AsyncIterator[None]:
    """At the session's end, stop what tests left running on the shared loop, for sure.

    pytest-asyncio cancels leftovers once when it closes the loop and then waits without a
    bound; a task that swallowed that one cancel (a clean-up awaited under
    ``suppress(CancelledError)``) would hang the run. Cancelling until they end does not; one
    still running after a minute is named, as the bug it is.
    """
    yield
    me = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not me]
    try:
        await asyncio.wait_for(cancel_and_wait(*leftovers), 60)
    except TimeoutError:
        stuck = sorted(task.get_name() for task in leftovers if not task.done())
        pytest.fail(f"tasks that would not stop: {stuck}")


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Start the broker and redis-server for the session."""
    kafka_port, redis_port = procs.free_port(), procs.free_port()
    logs = tmp_path_factory.mktemp("infra")
    broker = procs.spawn(procs.broker_args(kafka_port), log_path=logs / "broker.log")
    redis = procs.spawn(
        procs.redis_args(redis_port, logs, persistent=False), log_path=logs / "redis.log"
    )
    try:
        procs.wait_for_port(kafka_port, proc=broker)
        procs.wait_for_port(redis_port, proc=redis)
        yield Infra(
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            kafka_port=kafka_port,
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
            redis_port=redis_port,
        )
    finally:
        procs.stop(broker)
        procs.stop(redis)


@dataclass
class Isolation:
    """Per-test prefixes and the environment a service under test should see."""

    infra: Infra
    topic_prefix: str
    redis_prefix: str

    @classmethod
    def fresh(cls, infra: Infra) -> Isolation:
        """New prefixes of their own on the session's broker and Redis (a test's, or a module's
        for a service shared by its tests)."""
        tag = uuid.uuid4().hex[:10]
        return cls(infra=infra, topic_prefix=f"t{tag}.", redis_prefix=f"t{tag}:")

    def env(self) -> dict[str, str]:
        """Settings for a service in this test (as environment variable names)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka_bootstrap,
            "REDIS_URL": self.infra.redis_url,
            "STALL_TOPIC_PREFIX": self.topic_prefix,
            "STALL_REDIS_PREFIX": self.redis_prefix,
        }


@pytest.fixture
def isolation(infra: Infra) -> Isolation:
    """Fresh topic and Redis key prefixes for one test."""
    return Isolation.fresh(infra)


S = TypeVar("S", bound=CommonSettings)


def _isolated(settings_class: type[S], isolation: Isolation, **overrides: Any) -> S:
    fields: dict[str, Any] = {k.lower(): v for k, v in isolation.env().items()}
    return settings_class(**fields, **overrides)


class SettingsFactory(Protocol):
    """The ``service_settings`` fixture: ``await service_settings(WindowsSettings)``."""

    def __call__(self, settings_class: type[S]) -> Awaitable[S]: ...


@pytest.fixture
def service_settings(isolation: Isolation) -> SettingsFactory:
    """Settings of a service under test: this session's broker and Redis, this test's prefixes.

    The contract topics exist (under the test's prefix) once the settings are returned.
    """

    async def make(settings_class: type[S]) -> S:
        settings = _isolated(settings_class, isolation)
        await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
        return settings

    return make


@pytest.fixture
async def publisher(isolation: Isolation) -> AsyncIterator[KafkaBroker]:
    """A started test-side broker (client ``allocation``) to publish what a service consumes."""
    broker = make_broker(_isolated(CommonSettings, isolation, service_name="allocation"))
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture
async def redis_client(infra: Infra) -> AsyncIterator[Redis]:
    """A Redis client to the session's redis-server."""
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


@dataclass(frozen=True)
class RedisClusterInfo:
    """Ports of the session's three-master Redis Cluster (no replicas)."""

    ports: tuple[int, ...]

    @property
    def url(self) -> str:
        """A URL of one node (a cluster client discovers the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def cluster_url(self) -> str:
        """The ``redis+cluster://`` URL a service's ``REDIS_URL`` takes to use the cluster."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"


def _redis_cli() -> str:
    path = shutil.which("redis-cli")
    if path is None:  # Debian's redis-server depends on redis-tools, which has it
        raise RuntimeError("redis-cli is missing: apt-get install redis-tools")
    return path


def _cluster_ok(port: int) -> bool:
    info = subprocess.run(
        [_redis_cli(), "-p", str(port), "cluster", "info"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return "cluster_state:ok" in info.stdout


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterInfo]:
    """Start three cluster-enabled redis-servers and join them as one cluster for the session."""
    logs = tmp_path_factory.mktemp("redis-cluster")
    ports = tuple(procs.free_port() for _ in range(3))
    # The bus port defaults to port + 10000, which may be taken or above 65535: choose it too.
    bus_ports = tuple(procs.free_port() for _ in range(3))
    nodes = []
    try:
        for n, (port, bus_port) in enumerate(zip(ports, bus_ports, strict=True)):
            args = procs.redis_args(port, logs, persistent=False)
            args += [
                "--cluster-enabled", "yes",
                "--cluster-port", str(bus_port),
                "--cluster-config-file", str(logs / f"nodes-{n}.conf"),
            ]  # fmt: skip
            nodes.append(procs.spawn(args, log_path=logs / f"redis-{n}.log"))
        for port, node in zip(ports, nodes, strict=True):
            procs.wait_for_port(port, proc=node)
        addresses = [f"127.0.0.1:{p}" for p in ports]
        create = [_redis_cli(), "--cluster", "create", *addresses,
                  "--cluster-replicas", "0", "--cluster-yes"]  # fmt: skip
        subprocess.run(create, capture_output=True, timeout=60, check=True)
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(p) for p in ports):
            if time.monotonic() > deadline:
                raise TimeoutError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        yield RedisClusterInfo(ports)
    finally:
        for node in nodes:
            procs.stop(node)


class TopicReader:
    """Reads a topic from the beginning and collects decoded messages (test side)."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"reader-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
            enable_auto_commit=False,
        )
        self.records: list[Any] = []

    async def start(self) -> None:
        """Join and wait for the group assignment (not a fixed sleep)."""
        await self.consumer.start()
        for _ in range(300):
            if self.consumer.assignment():
                return
            await asyncio.sleep(0.1)
            await self.consumer.getmany(timeout_ms=10)
        raise TimeoutError("consumer was not assigned partitions")

    async def collect_until(
        self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0
    ) -> list[Any]:
        """Fetch until ``predicate(records)`` holds or ``timeout`` passes; return records."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.records) and loop.time() < deadline:
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.records.extend(records)
        return self.records

    async def stop(self) -> None:
        """Leave the group."""
        await self.consumer.stop()


@pytest.fixture
async def topic_reader(infra: Infra) -> AsyncIterator[Callable[[str], Any]]:
    """Factory of started :class:`TopicReader` instances, stopped after the test."""
    readers: list[TopicReader] = []

    async def make(topic: str) -> TopicReader:
        reader = TopicReader(infra.kafka_bootstrap, topic)
        await reader.start()
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        await reader.stop()


class FakeRedis:
    """Unit-test stand-in for the few Redis calls the shared runtime makes."""

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


#: How long test servers keep an idle connection (longer than any wait in a test).
KEEP_ALIVE_SECONDS = 600


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Any], Awaitable[httpx.AsyncClient]]]:
    """Serve ASGI apps with uvicorn on free ports; each call returns a client once ready."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(app: Any) -> httpx.AsyncClient:
        port = procs.free_port()
        server = uvicorn.Server(
            # A test may leave its client idle longer than uvicorn's 5 s keep-alive; a server
            # closing the connection just as the client reuses it is a ReadError, not a finding.
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
            )
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


def unit_parts(settings: CommonSettings, redis: Any) -> tuple[ServiceParts, list[KafkaMessage]]:
    """Service parts for a unit test (wrap ``parts.broker`` in FastStream's ``TestKafkaBroker``).

    Uses the given stand-in Redis, and collects what the service dead-letters into the
    returned list; call before the app is built, which wraps the subscribers.
    """
    parts = ServiceParts(
        settings=settings, clock=make_clock(settings), redis=redis, broker=make_broker(settings)
    )
    dead_letters: list[KafkaMessage] = []

    async def collect(message: KafkaMessage) -> None:
        dead_letters.append(message)

    mark_faststream_decorated(collect)  # a raw-message handler, like stallkit's subscribers
    parts.broker.subscriber(settings.topic(DEAD_LETTER.name))(collect)
    return parts, dead_letters
