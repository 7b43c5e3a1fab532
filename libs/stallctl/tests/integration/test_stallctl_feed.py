"""``stallctl feed``: a district's events followed live from the real broker, readable lines."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import pytest
from faststream.kafka import KafkaBroker

from contracts.catalogue import District
from contracts.events import MarketChanged, WindowOpened
from stallctl.feed import Language, follow
from stallkit.messaging import ensure_topics, publish_event
from stallkit.settings import CommonSettings
from stalltest.inspection import MARKET, OTHER, booking, market
from stalltest.plugin import Isolation

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


async def test_a_district_follows_its_own_events_in_readable_lines(
    isolation: Isolation, publisher: KafkaBroker
) -> None:
    env = {k.lower(): v for k, v in isolation.env().items()}
    settings = CommonSettings.model_validate({**env, "service_name": "feed-test"})
    await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    for market_id, district in ((MARKET, District.XIANGZHOU), (OTHER, District.DOUMEN)):
        event = MarketChanged(market_id=market_id, market=market(market_id, district, 22.2, 113.5))
        await publish_event(publisher, settings, event, time=NOW)  # before the feed starts
    out = io.StringIO()
    ready = asyncio.Event()
    following = asyncio.create_task(
        follow(settings, "xiangzhou", out=out, language=Language.BOTH,
               stop=lambda n: n >= 2, ready=ready)
    )  # fmt: skip
    await asyncio.wait_for(ready.wait(), 30)
    await publish_event(publisher, settings, booking(f"{OTHER}-A001", "vd_zoe"), time=NOW)
    await publish_event(publisher, settings, booking(f"{MARKET}-A001", "vd_alice"), time=NOW)
    opened = WindowOpened(
        market_id=MARKET, district=District.XIANGZHOU, window_id="evening",
        date=NOW.date(), closes_at=NOW,
    )  # fmt: skip
    await publish_event(publisher, settings, opened, time=NOW)
    assert await asyncio.wait_for(following, 30) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    # Two topics: their events come in either order.
    booked = next(line for line in lines if "booking.created" in line)
    opened_line = next(line for line in lines if "window.opened" in line)
    assert "vd_alice 预约了 XZ-07-A001" in booked
    assert "vd_alice booked XZ-07-A001" in booked
    assert "XZ-07 evening 时段开市" in opened_line
    assert all(OTHER not in line for line in lines)  # Doumen's booking is not Xiangzhou's
    assert booked.startswith("11-20 18:00:00")  # local time
