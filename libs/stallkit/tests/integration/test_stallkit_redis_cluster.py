"""A service's cluster client against a real three-master Redis Cluster: a fresh client takes
a burst of concurrent commands once warmed up (a service starts its relay, consumers and
timers at once), and a cluster that does not answer does not stop the service starting."""

from __future__ import annotations

import asyncio
import time

import pytest

from stallctl import procs
from stallkit.redis_client import redis_client, warm_up
from stalltest.plugin import RedisClusterInfo

pytestmark = pytest.mark.integration


async def test_a_warmed_up_cluster_client_takes_a_burst_of_concurrent_commands(
    redis_cluster: RedisClusterInfo,
) -> None:
    client = redis_client(redis_cluster.cluster_url, 16)
    try:
        await warm_up(client)
        keys = [f"warm:{{k{i}}}" for i in range(32)]  # spread over the three masters
        await asyncio.gather(*(client.set(k, i) for i, k in enumerate(keys)))
        values = await asyncio.gather(*(client.get(k) for k in keys))
        assert [int(v) for v in values] == list(range(32))
        await asyncio.gather(*(client.delete(k) for k in keys))
    finally:
        await client.aclose()


async def test_warming_up_a_cluster_that_does_not_answer_gives_up_in_time() -> None:
    client = redis_client(f"redis+cluster://127.0.0.1:{procs.free_port()}/", 4)
    try:
        began = time.monotonic()
        await warm_up(client, timeout=1.0)
        assert time.monotonic() - began < 3.0
    finally:
        await client.aclose()
