"""Choosing the Redis client by URL: one redis-server, or a Redis Cluster."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from stallkit.redis_client import ClusterAddress, parse_cluster_url
from stallkit.service import make_redis
from stallkit.settings import CommonSettings


def test_a_cluster_url_names_its_nodes_and_credentials() -> None:
    assert parse_cluster_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001/") == ClusterAddress(
        (("10.0.0.1", 7000), ("10.0.0.2", 7001)), None, None, tls=False
    )
    assert parse_cluster_url("rediss+cluster://app:p%40ss@[::1]:7000/0") == ClusterAddress(
        (("::1", 7000),), "app", "p@ss", tls=True
    )
    assert parse_cluster_url("redis+cluster://:secret@redis-0:6379") == ClusterAddress(
        (("redis-0", 6379),), None, "secret", tls=False
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://h:6379/0", "starts with"),
        ("redis+cluster://h:6379/1", "database 0"),
        ("redis+cluster:///", "at least one"),
        ("redis+cluster://h/", "host:port"),
        ("redis+cluster://h:port/", "host:port"),
        ("redis+cluster://h:6379/?timeout=1", "no query"),
    ],
)
def test_a_wrong_cluster_url_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_cluster_url(url)


async def test_make_redis_chooses_the_client_by_the_url() -> None:
    cluster = make_redis(CommonSettings(redis_url="redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"))
    single = make_redis(CommonSettings(redis_url="redis://127.0.0.1:6379/2"))
    try:
        assert isinstance(cluster, RedisCluster)
        startup = cluster.nodes_manager.startup_nodes.values()
        assert sorted((n.host, n.port) for n in startup) == [
            ("127.0.0.1", 7000),
            ("127.0.0.1", 7001),
        ]
        assert cluster.nodes_manager.connection_kwargs["socket_timeout"] == 5.0
        assert type(single) is Redis
        assert single.connection_pool.connection_kwargs["db"] == 2
    finally:
        await cluster.aclose()
        await single.aclose()


def test_settings_refuse_a_malformed_cluster_url_and_a_hash_tag_in_the_prefix() -> None:
    with pytest.raises(ValidationError, match="database 0"):
        CommonSettings(redis_url="redis+cluster://h:7000/3")
    with pytest.raises(ValidationError, match="must not hold"):
        CommonSettings(redis_prefix="t{x}:")
