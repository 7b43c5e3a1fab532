"""The inspection projection against a real broker and redis-server: catalogue, booking and
window events in; who should be where, which window runs, which codes hold, where markets are out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.envelope import Event
from contracts.events import (
    BookingCancelled,
    BookingCreated,
    MarketChanged,
    MarketResumed,
    MarketSuspended,
    StallChanged,
    StallCodeIssued,
    StallCodeRevoked,
    WindowCancelled,
    WindowClosed,
    WindowOpened,
)
from contracts.topics import BOOKINGS, DEAD_LETTER, DLQ_CONSUMER_HEADER, DLQ_REASON_HEADER
from inspection.adapters.expectation_store import RedisExpectationStore
from inspection.app import create_app
from inspection.config import InspectionSettings
from inspection.domain.expected import CodeStatus, MarketFacts, StallFacts
from inspection.domain.market_time import WindowInstance
from inspection.entrypoints.subscribers import GROUP_ID, ExpectationProjector, subscribe_projection
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ, Clock, local_datetime
from stallkit.messaging import make_broker, publish_event
from stalltest.tokens import dev_token

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]
Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]


def market() -> MarketChanged:
    window = MarketWindow(
        id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
        start=time(17, 30), end=time(22, 30),
    )  # fmt: skip
    return MarketChanged(
        market_id="JW-02",
        market=Market(
            id="JW-02",
            district=District.JINWAN,
            name_zh="金湾夜市",
            name_en="Jinwan Night Market",
            location=Location(lat=22.14, lon=113.36),
            zones=[Category.DAILY_GOODS],
            windows=[window],
        ),
    )


async def test_bookings_set_who_should_be_where_and_bad_messages_are_dead_lettered(
    inspection_settings: InspectionSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    topic_reader: Callable[[str], Awaitable[Any]],
    redis_client: Redis,
) -> None:
    settings = inspection_settings
    client = await serve(create_app(settings, configure_logs=False))
    now = datetime.now(UTC)
    token = dev_token(Role.PATROL, "patrol-jw-01", district="jinwan", now=now, ttl_seconds=600)
    client.headers["Authorization"] = f"Bearer {token}"
    day = (now.astimezone(MARKET_TZ) + timedelta(days=1)).date()
    url, query = "/v1/stalls/JW-02-B004/expected", {"date": day.isoformat(), "window_id": "evening"}
    assert (await client.get(url, params=query)).json()["code"] == "no_booking"

    booking = BookingCreated(
        market_id="JW-02",
        booking_id="bk_it_1",
        vendor_id="vd_it_1",
        stall_id="JW-02-B004",
        date=day,
        window_id="evening",
        category=Category.DAILY_GOODS,
        starts_at=datetime.combine(day, time(17, 30), tzinfo=MARKET_TZ).astimezone(UTC),
        ends_at=datetime.combine(day, time(22, 30), tzinfo=MARKET_TZ).astimezone(UTC),
        priority=True,
    )
    await publish_event(publisher, settings, market(), time=now)
    await publisher.publish(
        b"\x00not an envelope", topic=settings.topic(BOOKINGS.name), key=b"JW-02"
    )
    await publish_event(publisher, settings, booking, time=now)

    async def expected() -> dict[str, Any] | None:
        response = await client.get(url, params=query)
        return response.json() if response.status_code == 200 else None

    body = await eventually(expected)
    assert body["vendor_id"] == "vd_it_1"
    assert body["booking_id"] == "bk_it_1"
    assert body["district"] == "jinwan"
    key = settings.key("insp", "{JW-02}", "expected", day.isoformat())
    assert await redis_client.hget(key, "JW-02-B004|evening") is not None
    assert 0 < await redis_client.ttl(key) <= (settings.expected_retention_days + 3) * 86400

    cancel = BookingCancelled(
        market_id="JW-02",
        booking_id="bk_it_1",
        vendor_id="vd_it_1",
        stall_id="JW-02-B004",
        date=day,
        window_id="evening",
        late=False,
    )
    await publish_event(publisher, settings, cancel, time=now)

    async def cleared() -> bool:
        return (await client.get(url, params=query)).status_code == 404

    await eventually(cleared)

    reader = await topic_reader(settings.topic(DEAD_LETTER.name))
    records = await reader.collect_until(lambda rs: len(rs) >= 1)
    assert len(records) == 1
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers[DLQ_REASON_HEADER].startswith("bad envelope")
    assert headers[DLQ_CONSUMER_HEADER] == "inspection/inspection"
    assert records[0].key == b"JW-02"


async def test_redis_store_keeps_catalogue_facts_and_ended_bookings_by_market(
    inspection_settings: InspectionSettings, redis_client: Redis
) -> None:
    clock = Clock()
    store = RedisExpectationStore(redis_client, inspection_settings, clock, retention_days=7)
    day = clock.today()
    await store.put_stall(StallFacts("JW-02-B004", "JW-02", "daily_goods", False))
    await store.put_market(MarketFacts("JW-02", "jinwan"))
    await store.mark_ended("JW-02", day, "bk_old")

    assert await store.get_stall("JW-02", "JW-02-B004") == StallFacts(
        "JW-02-B004", "JW-02", "daily_goods", False
    )
    assert await store.get_stall("JW-02", "JW-02-B005") is None
    assert await store.get_market("JW-02") == MarketFacts("JW-02", "jinwan")
    assert await store.has_ended("JW-02", day, "bk_old")
    assert not await store.has_ended("JW-02", day, "bk_new")
    keys = await redis_client.keys(inspection_settings.redis_prefix + "*")
    prefix = inspection_settings.redis_prefix.encode() + b"insp:{JW-02}:"
    assert len(keys) == 3
    assert all(key.startswith(prefix) for key in keys)


# --- the projection consumer on its own --------------------------------------------------------

FRIDAY = date(2026, 11, 20)
SATURDAY = FRIDAY + timedelta(days=1)
EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(17, 30), end=time(20, 0),
)  # fmt: skip
LATE = MarketWindow(
    id="late", name_zh="晚市", name_en="Late", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(20, 30), end=time(22, 0),
)  # fmt: skip


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock time as an aware UTC datetime."""
    return local_datetime(day, hour * 60 + minute).astimezone(UTC)


def xz_market(market_id: str, lat: float, lon: float) -> MarketChanged:
    """A Xiangzhou market with the evening and late windows every day."""
    return MarketChanged(
        market_id=market_id,
        market=Market(
            id=market_id,
            district=District.XIANGZHOU,
            name_zh=f"{market_id} 便民市场",
            name_en=f"{market_id} Market",
            location=Location(lat=lat, lon=lon),
            zones=[Category.COOKED_FOOD, Category.DAILY_GOODS],
            windows=[EVENING, LATE],
        ),
    )


async def wait_for_assignment(broker: KafkaBroker, timeout: float = 60.0) -> None:
    """Until every subscriber of ``broker`` has joined its group and holds partitions."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(
        (consumer := getattr(sub, "consumer", None)) is not None and consumer.assignment()
        for sub in broker.subscribers
    ):
        if loop.time() > deadline:
            raise TimeoutError("the projection consumer was not assigned partitions")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def running_projection(
    settings: InspectionSettings, group_id: str = GROUP_ID
) -> AsyncIterator[RedisExpectationStore]:
    """The service's projection subscriber in ``group_id``, writing under the settings' prefix."""
    broker = make_broker(settings)
    redis = Redis.from_url(settings.redis_url)
    store = RedisExpectationStore(redis, settings, Clock(), settings.expected_retention_days)
    projector = ExpectationProjector(store)
    subscribe_projection(broker, settings, redis, projector, group_id=group_id)
    await broker.start()
    try:
        await wait_for_assignment(broker)
        yield store
    finally:
        await broker.stop()
        await redis.aclose()


async def publish_all(
    publisher: KafkaBroker, settings: InspectionSettings, events: list[tuple[Event, datetime]]
) -> None:
    """Publish each event with its time, as its producer would."""
    for event, at in events:
        await publish_event(publisher, settings, event, time=at)


async def test_issued_and_revoked_codes_reach_the_projection(
    inspection_settings: InspectionSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    settings = inspection_settings
    stall = "XZ-07-A001"
    async with running_projection(settings) as store:
        assert await store.code_status("XZ-07", stall, 1) is CodeStatus.CURRENT  # no events yet
        await publish_all(
            publisher,
            settings,
            [
                (StallCodeIssued(market_id="XZ-07", stall_id=stall, code_version=2),
                 local(FRIDAY, 9)),
                (StallCodeIssued(market_id="XZ-07", stall_id=stall, code_version=3),
                 local(FRIDAY, 10)),
                (StallCodeRevoked(market_id="XZ-07", stall_id=stall, code_version=3),
                 local(FRIDAY, 11)),
            ],
        )  # fmt: skip

        async def revoked() -> bool:
            return await store.code_status("XZ-07", stall, 3) is CodeStatus.REVOKED

        await eventually(revoked)
        assert await store.code_status("XZ-07", stall, 2) is CodeStatus.SUPERSEDED
        assert await store.code_status("XZ-07", stall, 1) is CodeStatus.SUPERSEDED
        assert await store.code_status("XZ-07", stall, 4) is CodeStatus.CURRENT  # issued later
        assert await store.code_status("XZ-07", "XZ-07-A002", 1) is CodeStatus.CURRENT


async def test_an_emergency_closure_and_its_lift_reach_the_projection(
    inspection_settings: InspectionSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    """Friday 18:10: the market is closed (typhoon); the evening window ends then, the late one
    is cancelled; at 20:15 the closure is lifted and the late window takes place after all."""
    settings = inspection_settings
    common: dict[str, Any] = {"market_id": "XZ-07", "date": FRIDAY, "district": "xiangzhou"}
    closed_at = local(FRIDAY, 18, 10)
    evening = WindowInstance("XZ-07", FRIDAY, "evening", local(FRIDAY, 17, 30), local(FRIDAY, 20))
    late = WindowInstance("XZ-07", FRIDAY, "late", local(FRIDAY, 20, 30), local(FRIDAY, 22))
    async with running_projection(settings) as store:
        await publish_event(
            publisher, settings, xz_market("XZ-07", 22.2707, 113.5767), time=local(FRIDAY, 8)
        )

        async def market_known() -> bool:
            return await store.get_market("XZ-07") is not None

        await eventually(market_known)  # the schedule first: the topics are not ordered
        await publish_all(
            publisher,
            settings,
            [
                (WindowOpened(**common, window_id="evening", closes_at=local(FRIDAY, 20)),
                 local(FRIDAY, 17, 30)),
                (MarketSuspended(market_id="XZ-07", district=District.XIANGZHOU,
                                 first_date=FRIDAY, last_date=FRIDAY, reason="台风",
                                 suspension_id="cl_1"), closed_at),
                (WindowClosed(**common, window_id="evening", reason="台风"), closed_at),
                (WindowCancelled(**common, window_id="late", cause="closed", reason="台风"),
                 closed_at),
            ],
        )  # fmt: skip

        async def closed_early() -> WindowInstance | None:
            instance = await store.window_at("XZ-07", local(FRIDAY, 18))
            return instance if instance is not None and instance.ends_at == closed_at else None

        assert await eventually(closed_early) == WindowInstance(
            "XZ-07", FRIDAY, "evening", evening.starts_at, closed_at
        )
        assert await store.window_at("XZ-07", local(FRIDAY, 19)) is None  # overtime now
        assert await store.window_at("XZ-07", local(FRIDAY, 21)) is None
        saturday = await store.current_or_next_window("XZ-07", local(FRIDAY, 19))
        assert saturday is not None
        assert (saturday.date, saturday.window_id) == (SATURDAY, "evening")

        resumed = MarketResumed(
            market_id="XZ-07", district=District.XIANGZHOU, suspension_id="cl_1"
        )
        await publish_event(publisher, settings, resumed, time=local(FRIDAY, 20, 15))

        async def late_runs() -> bool:
            return await store.window_at("XZ-07", local(FRIDAY, 21)) == late

        await eventually(late_runs)
        assert await store.current_or_next_window("XZ-07", local(FRIDAY, 20, 20)) == late
        assert await store.window_at("XZ-07", local(FRIDAY, 19)) is None  # the past stays


async def test_a_suspension_keeps_windows_shut_and_bookings_tell_who_is_free(
    inspection_settings: InspectionSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    settings = inspection_settings
    stalls = [
        Stall(id=f"XZ-07-A00{n}", market_id="XZ-07",
              category=Category.COOKED_FOOD if n <= 3 else Category.DAILY_GOODS)
        for n in range(1, 6)
    ]  # fmt: skip
    booked = BookingCreated(
        market_id="XZ-07", booking_id="bk_1", vendor_id="vd_1", stall_id="XZ-07-A001",
        date=SATURDAY, window_id="evening", category=Category.COOKED_FOOD,
        starts_at=local(SATURDAY, 17, 30), ends_at=local(SATURDAY, 20), priority=False,
    )  # fmt: skip
    async with running_projection(settings) as store:
        await publish_all(
            publisher,
            settings,
            [(xz_market("XZ-07", 22.2707, 113.5767), local(FRIDAY, 8))]
            + [(StallChanged(market_id="XZ-07", stall=s), local(FRIDAY, 8)) for s in stalls]
            + [(booked, local(FRIDAY, 9))]
            + [(MarketSuspended(market_id="XZ-07", district=District.XIANGZHOU,
                                first_date=FRIDAY, last_date=FRIDAY, reason="typhoon"),
                local(FRIDAY, 0))],
        )  # fmt: skip

        async def all_applied() -> WindowInstance | None:
            # Three topics, each in order: their last events tell that all came through.
            last_stall = await store.get_stall("XZ-07", "XZ-07-A005")
            booking = await store.expected_at("XZ-07", "XZ-07-A001", local(SATURDAY, 18))
            found = await store.current_or_next_window("XZ-07", local(FRIDAY, 12))
            if last_stall is None or booking is None or found is None:
                return None
            return found if found.date == SATURDAY else None

        # Friday is suspended: the next window is Saturday's evening, and A001 is booked then.
        instance = await eventually(all_applied)
        assert instance.window_id == "evening"
        assert await store.window_at("XZ-07", local(FRIDAY, 18)) is None
        assert await store.free_stalls("XZ-07", instance, "cooked_food") == 2
        assert await store.free_stalls("XZ-07", instance, "daily_goods") == 2
        assert await store.free_stalls("XZ-07", instance, None) == 4
        expected = await store.expected_at("XZ-07", "XZ-07-A001", local(SATURDAY, 18))
        assert expected is not None
        assert expected.vendor_id == "vd_1"
        assert await store.expected_at("XZ-07", "XZ-07-A001", local(SATURDAY, 20, 45)) is None
        assert await store.expected_at("XZ-07", "XZ-07-A002", local(SATURDAY, 18)) is None


async def test_nearest_markets_come_from_the_geo_index_and_follow_moves(
    inspection_settings: InspectionSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    settings = inspection_settings
    here = (22.2707, 113.5767)
    async with running_projection(settings) as store:
        await publish_all(
            publisher,
            settings,
            [
                (xz_market("XZ-01", 22.2707, 113.5767), local(FRIDAY, 8)),  # right here
                (xz_market("XZ-02", 22.2797, 113.5767), local(FRIDAY, 8)),  # ~1 km north
                (xz_market("XZ-03", 22.3607, 113.5767), local(FRIDAY, 8)),  # ~10 km north
            ],
        )

        async def three_known() -> list[tuple[str, float]] | None:
            found = await store.nearest_markets(*here, radius_km=50, limit=10)
            return found if len(found) == 3 else None

        found = await eventually(three_known)
        assert [m for m, _ in found] == ["XZ-01", "XZ-02", "XZ-03"]
        assert found[0][1] == pytest.approx(0.0, abs=0.001)
        assert found[1][1] == pytest.approx(1.0, abs=0.01)
        assert found[2][1] == pytest.approx(10.0, abs=0.05)
        assert [m for m, _ in await store.nearest_markets(*here, radius_km=5, limit=10)] == [
            "XZ-01",
            "XZ-02",
        ]
        assert len(await store.nearest_markets(*here, radius_km=50, limit=1)) == 1

        # XZ-01 moves away; a replay of its old change does not move it back.
        moved = xz_market("XZ-01", 22.4507, 113.5767)
        await publish_event(publisher, settings, moved, time=local(FRIDAY, 10))
        await publish_event(
            publisher, settings, xz_market("XZ-01", 22.2707, 113.5767), time=local(FRIDAY, 8)
        )
        # A later event of the same market (same partition) tells both were applied.
        marker = Stall(id="XZ-01-Z999", market_id="XZ-01", category=Category.DAILY_GOODS)
        await publish_event(
            publisher,
            settings,
            StallChanged(market_id="XZ-01", stall=marker),
            time=local(FRIDAY, 11),
        )

        async def settled() -> bool:
            return await store.get_stall("XZ-01", "XZ-01-Z999") is not None

        await eventually(settled)
        nearby = await store.nearest_markets(*here, radius_km=50, limit=10)
        assert [m for m, _ in nearby] == ["XZ-02", "XZ-03", "XZ-01"]
        market = await store.get_market("XZ-01")
        assert market is not None
        assert market.location is not None
        assert market.location.lat == pytest.approx(22.4507)
        assert market.name_zh == "XZ-01 便民市场"
        assert [w.id for w in market.windows] == ["evening", "late"]
