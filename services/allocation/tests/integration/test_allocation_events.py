"""Events over the real broker: what allocation publishes and what it consumes."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from allocation.domain.model import PriorityGroup
from contracts.events import CheckInDeadlinePassed
from contracts.topics import BOOKINGS, DEAD_LETTER, WINDOWS
from stallctl import procs
from stallkit.messaging import make_broker, publish_event
from stalltest.allocation import MONDAY, RunningAllocation, local, serve, set_now, small_catalogue
from stalltest.plugin import Isolation, TopicReader

pytestmark = pytest.mark.integration


def _events(records: list[Any], event_type: str) -> list[dict[str, Any]]:
    found = [json.loads(r.value) for r in records]
    return [e for e in found if e["type"].endswith(event_type)]


async def _poll(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def test_booking_events_carry_ids_never_personal_data(
    svc: RunningAllocation, topic_reader: Callable[[str], Any]
) -> None:
    reader = await topic_reader(svc.settings.topic(BOOKINGS.name))
    registered = await svc.register(
        name="黄阿姨", phone="13712345678", password="s3cret-pass", categories=["daily_goods"]
    )
    await svc.verified(registered.id)
    async with svc.client(registered.token) as c:
        booked = await c.post(
            "/v1/bookings",
            json={"stall_id": "XZ-91-C003", "date": MONDAY.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": "ev-1"},
        )
    assert booked.status_code == 201, booked.text
    records = await reader.collect_until(
        lambda rs: (
            len(_events(rs, "booking.created.v1")) >= 1
            and len(_events(rs, "vendor.eligibility.changed.v1")) >= 1
        )
    )
    for record in records:  # the eligibility decision too: ids and eligibility only
        assert b"13712345678" not in record.value
        assert "黄阿姨".encode() not in record.value
    (record,) = [r for r in records if b"booking.created" in r.value]
    event = json.loads(record.value)
    assert record.key == b"XZ-91"
    assert dict(record.headers)["ce_id"].decode() == event["id"]
    assert event["data"]["vendor_id"] == registered.id
    assert event["data"]["booking_id"] == booked.json()["id"]
    assert event["subject"] == booked.json()["id"]


async def test_check_in_deadline_event_marks_no_show_and_releases_stall(
    svc: RunningAllocation, topic_reader: Callable[[str], Any], isolation: Isolation
) -> None:
    reader = await topic_reader(svc.settings.topic(BOOKINGS.name))
    late_vendor, late_token = await svc.vendor(priority=PriorityGroup.COLLEGE_STUDENT)
    _, other_token = await svc.vendor()
    async with svc.client(late_token) as c:
        booked = (
            await c.post(
                "/v1/bookings",
                json={"stall_id": "XZ-91-C004", "date": MONDAY.isoformat(), "window_id": "evening"},
                headers={"Idempotency-Key": "ns-1"},
            )
        ).json()
    deadline = local(MONDAY, 18, 0)
    set_now(svc.clock, deadline + timedelta(minutes=1))

    publisher = make_broker(svc.settings)
    await publisher.start()
    try:
        await publisher.publish(b"{not an envelope", topic=svc.settings.topic(WINDOWS.name))
        await publish_event(
            publisher,
            svc.settings,
            CheckInDeadlinePassed(
                market_id="XZ-91",
                date=MONDAY,
                window_id="evening",
                district="xiangzhou",
                deadline=deadline,
            ),
            time=deadline,
        )
    finally:
        await publisher.stop()

    async def state() -> str | None:
        async with svc.client(late_token) as c:
            now = (await c.get(f"/v1/bookings/{booked['id']}")).json()["state"]
        return now if now == "no_show" else None

    assert await _poll(state) == "no_show"
    async with svc.client(other_token) as c:
        rebooked = await c.post(
            "/v1/bookings",
            json={"stall_id": "XZ-91-C004", "date": MONDAY.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": "ns-2"},
        )
    assert rebooked.status_code == 201, rebooked.text
    async with svc.client(late_token) as c:
        me = (await c.get("/v1/vendors/me")).json()
    assert me["no_shows_last_30_days"] == 1
    records = await reader.collect_until(
        lambda rs: (
            bool(_events(rs, "booking.no_show.v1")) and bool(_events(rs, "stall_released.v1"))
        )
    )
    (no_show,) = _events(records, "booking.no_show.v1")
    assert no_show["data"]["vendor_id"] == late_vendor
    assert no_show["data"]["no_shows_in_period"] == 1
    assert no_show["data"]["suspended_until"] is None
    (released,) = _events(records, "stall_released.v1")
    assert released["data"]["cause"] == "no_show"

    dead = await topic_reader(svc.settings.topic(DEAD_LETTER.name))
    dead_records = await dead.collect_until(lambda rs: len(rs) >= 1)
    assert dict(dead_records[0].headers)["dlq-reason"].startswith(b"bad envelope")


async def test_broker_outage_does_not_fail_bookings_and_events_flow_after(
    make_settings: Callable[..., Any],
) -> None:
    port = procs.free_port()
    broker = procs.spawn(procs.broker_args(port))
    procs.wait_for_port(port, proc=broker)
    settings = make_settings(kafka_bootstrap_servers=f"127.0.0.1:{port}")
    try:
        async with serve(settings) as svc:
            async with svc.client(svc.admin_token) as admin:
                imported = await admin.put(
                    "/v1/admin/catalogue", json=small_catalogue().model_dump(mode="json")
                )
                assert imported.status_code == 200
            set_now(svc.clock, local(MONDAY, 10))
            procs.stop(broker)  # the broker is down from here on

            booked = []
            for i in range(5):
                _, token = await svc.vendor()
                async with svc.client(token) as c:
                    response = await c.post(
                        "/v1/bookings",
                        json={
                            "stall_id": f"XZ-91-C{i + 1:03d}",
                            "date": MONDAY.isoformat(),
                            "window_id": "evening",
                        },
                        headers={"Idempotency-Key": f"out-{i}"},
                    )
                assert response.status_code == 201, response.text
                booked.append(response.json()["id"])
            outbox = svc.allocation.keys.outbox()
            assert await svc.allocation.ledger.redis.xlen(outbox) >= 5

            broker = procs.spawn(procs.broker_args(port))  # back, empty (in-memory broker)
            procs.wait_for_port(port, proc=broker)
            reader = TopicReader(f"127.0.0.1:{port}", settings.topic(BOOKINGS.name))
            await reader.start()
            try:
                records = await reader.collect_until(
                    lambda rs: len(_events(rs, "booking.created.v1")) >= 5, timeout=60
                )
                await asyncio.sleep(1.0)  # anything duplicated would arrive right behind
                records = await reader.collect_until(lambda rs: False, timeout=0.5)
            finally:
                await reader.stop()
            created = _events(records, "booking.created.v1")
            ids = Counter(e["id"] for e in created)
            assert sorted(e["data"]["booking_id"] for e in created) == sorted(booked)
            assert set(ids.values()) == {1}
            assert await svc.allocation.ledger.redis.xlen(outbox) == 0
    finally:
        procs.stop(broker)
