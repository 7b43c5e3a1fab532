"""The counter takes a market's district from the events that name it, within a batch too."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.catalogue import District
from contracts.envelope import Envelope, Event, RawEnvelope
from contracts.events import BookingCreated, MarketChanged, StallChanged
from contracts.examples import example_of
from reporting.adapters.stats_store import InMemoryStatsStore
from reporting.domain.stats import Scope, ScopeKind
from reporting.entrypoints.subscribers import EventCounter

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def item(event: Event) -> tuple[Event, RawEnvelope]:
    envelope = Envelope.wrap(event, source="/services/test", time=NOW)
    return event, RawEnvelope.from_bytes(envelope.model_dump_json())


async def test_events_after_a_market_change_in_the_same_batch_count_in_its_district() -> None:
    store = InMemoryStatsStore()
    counter = EventCounter(store)
    market = example_of(MarketChanged)
    market_id = market.market_id
    district = market.market.district.value
    elsewhere = District.DOUMEN if district != District.DOUMEN else District.XIANGZHOU
    moved = market.model_copy(
        update={"market": market.market.model_copy(update={"district": elsewhere})}
    )
    stall = example_of(StallChanged)
    booking = example_of(BookingCreated)
    assert stall.market_id == booking.market_id == market_id

    # A stall change before anyone said where the market is, then the market, then a stall.
    await counter.on_batch([item(stall), item(market), item(stall)])
    counted = await store.stats(Scope(ScopeKind.DISTRICT, district))
    assert counted.events == {market.event_type(): 1, stall.event_type(): 1}
    assert (await store.stats(Scope(ScopeKind.MARKET, market_id))).events[stall.event_type()] == 2

    # A later batch learns the district from the store; a move counts what follows elsewhere.
    await counter.on_batch([item(booking), item(moved), item(booking)])
    assert (await store.stats(Scope(ScopeKind.DISTRICT, district))).events[
        booking.event_type()
    ] == 1
    assert (await store.stats(Scope(ScopeKind.DISTRICT, elsewhere.value))).events[
        booking.event_type()
    ] == 1
