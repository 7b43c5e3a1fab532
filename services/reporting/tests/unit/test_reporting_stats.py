"""Counting rules, without Redis or Kafka."""

from __future__ import annotations

import pytest

from reporting.adapters.stats_store import InMemoryStatsStore
from reporting.domain.stats import ALL, CountedEvent, EventStats, Scope, ScopeKind, scopes_of

pytestmark = pytest.mark.unit

CREATED = "cn.gov.zhuhai.markets.booking.created.v1"
OPENED = "cn.gov.zhuhai.markets.window.opened.v1"


def test_an_event_counts_overall_for_its_market_and_its_district() -> None:
    event = CountedEvent("e1", OPENED, "XZ-03", "xiangzhou")
    assert scopes_of(event) == [
        ALL,
        Scope(ScopeKind.MARKET, "XZ-03"),
        Scope(ScopeKind.DISTRICT, "xiangzhou"),
    ]


def test_an_event_without_a_known_district_counts_for_its_market() -> None:
    assert scopes_of(CountedEvent("e1", CREATED, "XZ-03", None)) == [
        ALL,
        Scope(ScopeKind.MARKET, "XZ-03"),
    ]


def test_total_is_the_sum_over_types() -> None:
    assert EventStats({CREATED: 3, OPENED: 2}).total == 5
    assert EventStats({}).total == 0


async def test_an_event_is_counted_once() -> None:
    store = InMemoryStatsStore()
    event = CountedEvent("e1", CREATED, "XZ-03", None)
    assert await store.count(event)
    assert not await store.count(event)
    assert await store.count(CountedEvent("e2", CREATED, "DM-01", "doumen"))
    assert (await store.stats(ALL)).events == {CREATED: 2}
    assert (await store.stats(Scope(ScopeKind.MARKET, "XZ-03"))).total == 1
    assert (await store.stats(Scope(ScopeKind.DISTRICT, "doumen"))).total == 1
    assert (await store.stats(Scope(ScopeKind.DISTRICT, "jinwan"))).total == 0
