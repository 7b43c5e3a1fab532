"""The allocation service configured with a Redis Cluster URL: booking, outbox relay, Kafka."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from contracts.topics import BOOKINGS
from stalltest.allocation import MONDAY, serve_seeded
from stalltest.plugin import Isolation, RedisClusterInfo

pytestmark = pytest.mark.integration


async def test_a_booking_on_a_cluster_reaches_kafka_through_the_outbox(
    isolation: Isolation, redis_cluster: RedisClusterInfo, topic_reader: Callable[[str], Any]
) -> None:
    async with serve_seeded(isolation, redis_url=redis_cluster.cluster_url) as svc:
        assert isinstance(svc.allocation.catalogue.redis, RedisCluster)
        reader = await topic_reader(svc.settings.topic(BOOKINGS.name))
        _, token = await svc.vendor()
        async with svc.client(token) as c:
            booked = await c.post(
                "/v1/bookings",
                json={"stall_id": "XZ-91-C003", "date": MONDAY.isoformat(), "window_id": "evening"},
                headers={"Idempotency-Key": "cluster-1"},
            )
            assert booked.status_code == 201, booked.text
            mine = await c.get("/v1/bookings")
            assert mine.status_code == 200, mine.text
        async with svc.client() as anonymous:
            ready = await anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text

        def created(records: list[Any]) -> list[dict[str, Any]]:
            events = [json.loads(r.value) for r in records]
            return [e for e in events if e["type"].endswith("booking.created.v1")]

        records = await reader.collect_until(lambda rs: bool(created(rs)))
        (event,) = created(records)
        assert event["data"]["booking_id"] == booked.json()["id"]
        assert booked.json()["id"] in mine.text
