"""A service's Redis client after redis-server restarts: no command fails on an old connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stallctl import procs
from stallkit.redis_client import redis_client

pytestmark = pytest.mark.integration


async def test_connections_made_before_a_restart_are_renewed_not_failed(tmp_path: Path) -> None:
    """Every pooled connection dies with the server; each command after the restart still
    succeeds (the pool reconnects a closed connection before handing it out)."""
    port = procs.free_port()
    args = procs.redis_args(port, tmp_path, persistent=True)
    server = procs.spawn(args, log_path=tmp_path / "redis.log")
    client = redis_client(f"redis://127.0.0.1:{port}/0", max_connections=32)
    try:
        procs.wait_for_port(port, proc=server)
        await asyncio.gather(*(client.set(f"k{n}", n) for n in range(16)))  # 16 connections
        server.kill()
        server.wait(10)
        server = procs.spawn(args, log_path=tmp_path / "redis.log")
        # Waited for in a thread: the event loop runs meanwhile, as a service's does.
        await asyncio.to_thread(procs.wait_for_port, port, proc=server)
        values = await asyncio.gather(*(client.get(f"k{n}") for n in range(16)))
        assert values == [str(n).encode() for n in range(16)]  # from the append-only file
    finally:
        await client.aclose()
        procs.stop(server)
