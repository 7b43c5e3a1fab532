"""A service's Redis pool under contention: more concurrent commands than connections all
succeed, in the order they asked, on no more connections than the pool's bound."""

from __future__ import annotations

import asyncio

import pytest

from stallkit.redis_client import redis_client
from stalltest.plugin import Infra

pytestmark = pytest.mark.integration


async def _connections(infra: Infra, name: str) -> int:
    probe = redis_client(infra.redis_url, max_connections=1)
    try:
        clients = (await probe.execute_command("CLIENT", "LIST")).decode().splitlines()
        return sum(f" name={name} " in line for line in clients)
    finally:
        await probe.aclose()


async def test_many_commands_share_few_connections_and_waiters_are_served_in_turn(
    infra: Infra,
) -> None:
    """300 commands at once through a pool of 3: all applied, none refused, 3 connections; with
    all three held by slow commands, the commands queued behind them run in arrival order."""
    key = "pool-test:counter"
    client = redis_client(infra.redis_url, max_connections=3)
    try:
        await client.delete(key, "pool-test:order", "pool-test:never")
        results = await asyncio.gather(*(client.incr(key) for _ in range(300)))
        assert sorted(results) == list(range(1, 301))
        for _ in range(3):  # name every pooled connection
            await asyncio.gather(*(client.client_setname("pool-test") for _ in range(3)))
        assert await _connections(infra, "pool-test") == 3

        # All three held by slow commands; twenty more queue and go in the order they came.
        slow = [asyncio.create_task(client.blpop(["pool-test:never"], 0.3)) for _ in range(3)]
        await asyncio.sleep(0.05)
        queued = []
        for n in range(20):
            queued.append(asyncio.create_task(client.rpush("pool-test:order", n)))
            await asyncio.sleep(0)
        await asyncio.gather(*slow, *queued)
        order = await client.lrange("pool-test:order", 0, -1)
        assert [int(n) for n in order] == list(range(20))
        # And once the queue is gone, commands flow again on the same three connections.
        await asyncio.gather(*(client.incr(key) for _ in range(30)))
        assert int(await client.get(key)) == 330
        assert await _connections(infra, "pool-test") == 3
    finally:
        await client.delete(key, "pool-test:order")
        await client.aclose()
