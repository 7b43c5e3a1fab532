"""Rebuilding the projection from the topics gives the projection the service kept live.

The service's subscriber projects a day of catalogue, booking and window events of two markets,
with redeliveries (the same event id again) and re-publications (the same fact under a new id).
A second projection, in a new consumer group under a fresh Redis prefix, then reads the same
topics from the beginning, where the topics interleave otherwise than they did live, and ends
up with exactly the same data. The subscriber folds each fetched batch at once; the same days
folded as one batch leave what the events applied one by one leave.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.envelope import Envelope, Event, RawEnvelope
from contracts.events import (
    BookingCancelled,
    BookingCreated,
    BookingNoShow,
    MarketChanged,
    MarketResumed,
    MarketSuspended,
    MarketSuspensionDeclared,
    MarketSuspensionLifted,
    ScheduleChanged,
    StallChanged,
    StallCodeIssued,
    StallCodeRevoked,
    WindowCancelled,
    WindowClosed,
    WindowOpened,
)
from inspection.adapters.expectation_store import RedisExpectationStore
from inspection.config import InspectionSettings
from inspection.domain.expected import CodeStatus
from inspection.entrypoints.subscribers import (
    GROUP_ID,
    ExpectationProjector,
    batch_projection,
    projection_handlers,
    subscribe_projection,
)
from stallkit.clock import Clock, local_datetime
from stallkit.messaging import make_broker, publish_event

pytestmark = pytest.mark.integration

Eventually = Callable[..., Awaitable[Any]]

FRIDAY = date(2026, 11, 20)
SATURDAY = FRIDAY + timedelta(days=1)
SUNDAY = FRIDAY + timedelta(days=2)
MARKETS = {
    "XZ-07": (District.XIANGZHOU, 22.2707, 113.5767),
    "DM-02": (District.DOUMEN, 22.209, 113.297),
}
EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(17, 30), end=time(20, 0),
)  # fmt: skip
LATE = MarketWindow(
    id="late", name_zh="晚市", name_en="Late", days=[1, 2, 3, 4, 5, 6, 7],
    start=time(20, 30), end=time(22, 0),
)  # fmt: skip
MORNING = MarketWindow(
    id="morning", name_zh="早市", name_en="Morning", days=[6, 7], start=time(6), end=time(10)
)
SENTINEL_STALL, SENTINEL_BOOKING = "Z999", "bk_last"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock time as an aware UTC datetime."""
    return local_datetime(day, hour * 60 + minute).astimezone(UTC)


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
    subscribe_projection(broker, settings, redis, ExpectationProjector(store), group_id=group_id)
    await broker.start()
    try:
        await wait_for_assignment(broker)
        yield store
    finally:
        await broker.stop()
        await redis.aclose()


def market(market_id: str, windows: list[MarketWindow], lat_shift: float = 0.0) -> MarketChanged:
    district, lat, lon = MARKETS[market_id]
    return MarketChanged(
        market_id=market_id,
        market=Market(
            id=market_id,
            district=district,
            name_zh=f"{market_id} 便民市场",
            name_en=f"{market_id} Market",
            location=Location(lat=lat + lat_shift, lon=lon),
            zones=[Category.COOKED_FOOD, Category.DAILY_GOODS],
            windows=windows,
        ),
    )


def booking(market_id: str, n: int, booking_id: str, vendor_id: str, day: date) -> BookingCreated:
    return BookingCreated(
        market_id=market_id, booking_id=booking_id, vendor_id=vendor_id,
        stall_id=f"{market_id}-A{n:03d}", date=day, window_id="evening",
        category=Category.COOKED_FOOD, starts_at=local(day, 17, 30), ends_at=local(day, 20),
        priority=False,
    )  # fmt: skip


def ended(kind: type[Any], created: BookingCreated, **extra: Any) -> Any:
    fields = ("market_id", "booking_id", "vendor_id", "stall_id", "date", "window_id")
    return kind(**{f: getattr(created, f) for f in fields}, **extra)


def day_of(market_id: str) -> list[tuple[Event, datetime]]:
    """One market's day, in the order each topic carries it (three topics, interleaved)."""
    district = MARKETS[market_id][0]
    common: dict[str, Any] = {"market_id": market_id, "district": district}
    stalls = [
        Stall(id=f"{market_id}-A{n:03d}", market_id=market_id,
              category=Category.COOKED_FOOD if n <= 3 else Category.DAILY_GOODS)
        for n in range(1, 6)
    ]  # fmt: skip
    first = booking(market_id, 1, f"bk_{market_id}_1", "vd_1", FRIDAY)
    second = booking(market_id, 2, f"bk_{market_id}_2", "vd_2", FRIDAY)
    rebooked = booking(market_id, 2, f"bk_{market_id}_3", "vd_3", FRIDAY)
    saturday = booking(market_id, 1, f"bk_{market_id}_4", "vd_1", SATURDAY)
    sentinel_stall = Stall(
        id=f"{market_id}-{SENTINEL_STALL}", market_id=market_id, category=Category.DAILY_GOODS
    )
    last = booking(market_id, 5, SENTINEL_BOOKING, "vd_9", SUNDAY)
    return [
        (market(market_id, [EVENING]), local(FRIDAY, 7)),
        *[(StallChanged(market_id=market_id, stall=s), local(FRIDAY, 7)) for s in stalls],
        (market(market_id, [EVENING, LATE], lat_shift=0.01), local(FRIDAY, 8)),
        (ScheduleChanged(market_id=market_id, windows=[EVENING, LATE, MORNING]), local(FRIDAY, 9)),
        (market(market_id, [EVENING]), local(FRIDAY, 7)),  # an old change published again
        (StallCodeIssued(market_id=market_id, stall_id=stalls[0].id, code_version=2),
         local(FRIDAY, 9)),
        (StallCodeRevoked(market_id=market_id, stall_id=stalls[1].id, code_version=1),
         local(FRIDAY, 9)),
        (MarketSuspensionDeclared(market_id=market_id, suspension_id="sp_1", first_date=SUNDAY,
                                  last_date=SUNDAY, reason="public event"), local(FRIDAY, 10)),
        (first, local(FRIDAY, 10)),
        (second, local(FRIDAY, 10)),
        (saturday, local(FRIDAY, 10, 5)),
        (ended(BookingNoShow, second, no_shows_in_period=1), local(FRIDAY, 18)),
        (rebooked, local(FRIDAY, 18, 5)),
        (ended(BookingCancelled, saturday, late=False), local(FRIDAY, 11)),
        (WindowOpened(**common, date=FRIDAY, window_id="evening", closes_at=local(FRIDAY, 20)),
         local(FRIDAY, 17, 30)),
        (MarketSuspended(**common, first_date=FRIDAY, last_date=FRIDAY, reason="台风",
                         suspension_id="cl_1"), local(FRIDAY, 19)),
        (WindowClosed(**common, date=FRIDAY, window_id="evening", reason="台风"),
         local(FRIDAY, 19)),
        (WindowCancelled(**common, date=FRIDAY, window_id="late", cause="closed", reason="台风"),
         local(FRIDAY, 19)),
        (MarketResumed(**common, suspension_id="cl_1"), local(SATURDAY, 0)),
        (MarketResumed(**common), local(SATURDAY, 0, 1)),  # an older producer's, without an id
        (MarketSuspensionLifted(market_id=market_id, suspension_id="sp_1", first_date=SUNDAY,
                                last_date=SUNDAY, reopened_from=SUNDAY), local(SATURDAY, 9)),
        # The last event of each topic: once all three are seen, everything before was applied.
        (StallChanged(market_id=market_id, stall=sentinel_stall), local(SATURDAY, 9)),
        (last, local(SATURDAY, 9)),
        (WindowOpened(**common, date=SATURDAY, window_id="morning", closes_at=local(SATURDAY, 10)),
         local(SATURDAY, 6)),
    ]  # fmt: skip


async def test_a_projection_rebuilt_from_the_topics_equals_the_live_one(
    inspection_settings: InspectionSettings, publisher: KafkaBroker, eventually: Eventually
) -> None:
    settings = inspection_settings
    async with running_projection(settings) as live:
        for n, (event, at) in enumerate(e for m in MARKETS for e in day_of(m)):
            envelope = await publish_event(publisher, settings, event, time=at)
            if n % 3 == 0:  # a redelivery: the same event id again
                await publish_event(publisher, settings, event, time=at, event_id=envelope.id)
            if n % 4 == 0:  # a re-publication: the same fact under a new id
                await publish_event(publisher, settings, event, time=at)

        async def all_applied() -> bool:
            for market_id in MARKETS:
                stall = await live.get_stall(market_id, f"{market_id}-{SENTINEL_STALL}")
                last = await live.expected_at(market_id, f"{market_id}-A005", local(SUNDAY, 18))
                morning = await live.window_at(market_id, local(SATURDAY, 7))
                if stall is None or last is None or morning is None:
                    return False
            return True

        await eventually(all_applied, timeout=60)
        live_dump = await live.dump()

        # What the live projection says, so that equal dumps mean equal answers.
        assert await live.code_status("XZ-07", "XZ-07-A001", 1) is CodeStatus.SUPERSEDED
        assert await live.code_status("XZ-07", "XZ-07-A002", 1) is CodeStatus.REVOKED
        closed = await live.window_at("XZ-07", local(FRIDAY, 18))
        assert closed is not None
        assert closed.ends_at == local(FRIDAY, 19)
        assert await live.window_at("XZ-07", local(FRIDAY, 21)) is None
        rebooked = await live.expected_at("XZ-07", "XZ-07-A002", local(FRIDAY, 18, 30))
        assert rebooked is not None
        assert rebooked.vendor_id == "vd_3"
        assert await live.expected_at("XZ-07", "XZ-07-A001", local(SATURDAY, 18)) is None
        facts = await live.get_market("XZ-07")
        assert facts is not None
        assert [w.id for w in facts.windows] == ["evening", "late", "morning"]
        assert [m for m, _ in await live.nearest_markets(22.2807, 113.5767, 50, 5)] == [
            "XZ-07",
            "DM-02",
        ]
        kinds = {key.split(":", 2)[2].split(":")[0] for key in live_dump}
        assert kinds == {
            "market", "schedule", "stalls", "codes", "expected", "ended", "instances",
            "suspensions", "resumed", "markets",
        }  # fmt: skip

    rebuild_settings = settings.model_copy(update={"redis_prefix": f"r{uuid.uuid4().hex[:10]}:"})
    async with running_projection(rebuild_settings, group_id="inspection-rebuild") as rebuilt:

        async def caught_up() -> bool:
            return await rebuilt.dump() == live_dump

        await eventually(caught_up, timeout=60)
        assert await rebuilt.dump() == live_dump


async def test_a_batch_folded_at_once_leaves_what_the_events_one_by_one_leave(
    inspection_settings: InspectionSettings,
) -> None:
    settings = inspection_settings
    items: list[tuple[Event, RawEnvelope]] = []
    for event, at in (e for m in MARKETS for e in day_of(m)):
        envelope = Envelope.wrap(event, source="/services/test", time=at)
        raw = RawEnvelope.from_bytes(envelope.model_dump_json())
        items += [(event, raw), (event, raw)]  # each one redelivered at once, in the same batch
    redis = Redis.from_url(settings.redis_url)
    try:
        one_by_one = RedisExpectationStore(
            redis, settings, Clock(), settings.expected_retention_days
        )
        handlers = projection_handlers(ExpectationProjector(one_by_one))
        for event, raw in items:
            await handlers[type(event)](event, raw)
        expected = await one_by_one.dump()
        assert await one_by_one.expected_at("XZ-07", "XZ-07-A002", local(FRIDAY, 18, 30))

        batch_settings = settings.model_copy(update={"redis_prefix": f"b{uuid.uuid4().hex[:10]}:"})
        batched = RedisExpectationStore(
            redis, batch_settings, Clock(), settings.expected_retention_days
        )
        fold = batch_projection(batched)
        await fold(items)
        assert await batched.dump() == expected
        await fold(items)  # the batch again, as after a crash before its offsets were committed
        assert await batched.dump() == expected
    finally:
        await redis.aclose()
