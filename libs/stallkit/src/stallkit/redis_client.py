"""The Redis client of a service: one redis-server, or a Redis Cluster chosen by the URL.

``redis://`` / ``rediss://`` (and ``unix://``) URLs give the single-node client; a
``redis+cluster://[user:password@]host:port[,host:port...][/0]`` URL (``rediss+cluster://`` with
TLS) gives a :class:`~redis.asyncio.cluster.RedisCluster` that starts from those nodes and
discovers the others. A cluster has only database 0.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import unquote

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

#: What services hold: both clients take the same commands, scripts and pipelines (a cluster
#: needs every key of a script or transaction in one hash slot).
RedisClient: TypeAlias = Redis | RedisCluster
#: A non-transactional pipeline of either (a cluster's sends each slot's commands to its node).
RedisPipeline: TypeAlias = Pipeline | ClusterPipeline

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 30


@dataclass(frozen=True)
class ClusterAddress:
    """The parts of a ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def _node(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a cluster node is host:port, not {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def parse_cluster_url(url: str) -> ClusterAddress:
    """The nodes and credentials of a cluster URL; ValueError saying what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError("a Redis Cluster URL starts with redis+cluster:// or rediss+cluster://")
    netloc, _, path = rest.partition("/")
    if "?" in netloc or "?" in path or "#" in rest:
        raise ValueError("a Redis Cluster URL takes no query or fragment")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    userinfo, at, hosts = netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(h) for h in hosts.split(",") if h.strip())
    if not nodes:
        raise ValueError("a Redis Cluster URL names at least one host:port")
    return ClusterAddress(nodes, username, password, CLUSTER_SCHEMES[scheme.lower()])


def redis_client(
    url: str, max_connections: int, *, command_timeout: float = COMMAND_TIMEOUT
) -> RedisClient:
    """A client for ``url``: a :class:`RedisCluster` for a cluster URL, else a single-node
    :class:`Redis` that owns its blocking pool (closing either closes its connections).

    ``max_connections`` bounds each node's connections; ``command_timeout`` must outlast the
    longest blocking command (XREAD BLOCK) the client sends.
    """
    if is_cluster_url(url):
        address = parse_cluster_url(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
            username=address.username,
            password=address.password,
            ssl=address.tls,
            max_connections=max_connections,  # per node
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=command_timeout,
            health_check_interval=HEALTH_CHECK_INTERVAL,
            require_full_coverage=True,
        )
    pool = _Pool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=command_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        # redis-py 8's default ("auto") skips the pool's check that a pooled connection is
        # still open: after a Redis restart each connection made before it would fail its
        # next command (a 503). Maintenance notifications are a managed-Redis feature.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return Redis.from_pool(pool)


class _Pool(BlockingConnectionPool):  # type: ignore[misc]  # redis is untyped here
    """A :class:`BlockingConnectionPool` whose uncontended checkout and release are cheap.

    redis-py's pool takes an ``asyncio.Condition`` and a timeout context for every command and
    awaits its (unused here) event and observability hooks on every release: about a tenth of a
    booking's time. While nobody waits for a connection and one is idle, neither is needed:
    asyncio runs the pop and the push without interruption. Otherwise (all connections busy,
    none made yet, or a task already waiting) the pool's own, fair path is taken. The check that
    a pooled connection is still open and clean stays on both paths (it is what survives a Redis
    restart); only its detour through the retry policy for an open connection is skipped.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Tasks inside the pool's own checkout (waiting, or about to make a connection).
        self._slow = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if self._slow or not self._available_connections or self._in_maintenance:
            self._slow += 1
            try:
                return await super().get_connection()
            finally:
                self._slow -= 1
        connection = self._available_connections.pop()
        self._in_use_connections.add(connection)
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        # An open connection with nothing unread is ready. The pool's own check would first
        # call connect(), which goes through the retry policy even on an open connection.
        if connection.is_connected:
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                if not await connection.can_read():
                    return
        await super().ensure_connection(connection)  # reconnects a closed or dirty one

    async def release(self, connection: AbstractConnection) -> None:
        if self._slow or self._in_maintenance:
            await super().release(connection)  # wakes a waiter
            return
        self._in_use_connections.remove(connection)
        if connection.should_reconnect():
            await connection.disconnect()
        self._available_connections.append(connection)


async def warm_up(client: RedisClient, timeout: float = 2 * CONNECT_TIMEOUT) -> None:
    """Learn a cluster's slots before a service sends its first commands all at once.

    redis-py's asyncio ``RedisCluster`` (8.1) initialises on its first command, and commands
    sent concurrently before that fail (``AttributeError`` on a connection not made yet): a
    service starting its relay, consumers and timers together hit it. A cluster that does not
    answer in ``timeout`` is left alone: the service starts anyway (``/readyz`` says so) and the
    client initialises on a later command, as before. One redis-server needs nothing.
    """
    if isinstance(client, RedisCluster):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.initialize(), timeout)


async def ping(client: RedisClient) -> bool:
    """Whether Redis answers: on a cluster, every primary (each holds slots the service needs)."""
    if isinstance(client, RedisCluster):
        return bool(await client.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await client.ping())
