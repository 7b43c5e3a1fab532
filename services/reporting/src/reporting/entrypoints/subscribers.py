"""Every event in, counters out: the edge between Kafka and the reporting domain."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from contracts.envelope import Event, RawEnvelope
from contracts.events import (
    ALL_EVENTS,
    InspectionEvent,
    MarketChanged,
    MarketResumed,
    MarketSuspended,
    WindowEvent,
)
from contracts.summaries import short_type, summarize
from reporting.adapters.facts_store import FactWrites
from reporting.adapters.feed_log import FeedLog
from reporting.adapters.stats_store import StatsStore
from reporting.config import ReportingSettings
from reporting.domain.feed import NewEntry
from reporting.domain.stats import CountedEvent
from reporting.service_layer.facts import FactsProjector
from stallkit.messaging import subscribe_events
from stallkit.redis_client import RedisClient

TOPICS = ["catalogue", "bookings", "windows", "inspection"]


def district_in(event: Event) -> str | None:
    """The district an event names itself, if it names one."""
    if isinstance(event, MarketChanged):
        return event.market.district.value
    if isinstance(event, WindowEvent | MarketSuspended | MarketResumed | InspectionEvent):
        return event.district.value
    return None


class EventCounter:
    """Counts every event once, by type, overall and per market and district, records the facts
    reports need, and appends it to its district's feed (and to ``all``)."""

    def __init__(
        self,
        store: StatsStore,
        feed: FeedLog | None = None,
        facts: FactsProjector | None = None,
    ):
        self.store = store
        self.feed = feed
        self.facts = facts

    async def on_event(self, event: Event, envelope: RawEnvelope) -> None:
        """Count one event; a market's district is learnt from its catalogue changes."""
        await self.on_batch([(event, envelope)])

    async def on_batch(self, items: Sequence[tuple[Event, RawEnvelope]]) -> None:
        """What :meth:`on_event` does for each event, in order, in three round trips: the
        counts, the facts, then the feed entries (and one before them, for the districts of
        markets not in memory). Every write is idempotent by event id or sets a fact, so a
        batch that failed part way is applied again whole."""
        counted: list[CountedEvent] = []
        entries: list[NewEntry] = []
        writes = FactWrites()
        # The districts of the markets whose events do not name theirs, in one round trip; a
        # catalogue change in the batch updates them for the events after it.
        districts = await self.store.districts_of(
            event.market_id for event, _ in items if district_in(event) is None
        )
        for event, envelope in items:
            district = district_in(event)
            if district is None:
                district = districts.get(event.market_id)
            elif isinstance(event, MarketChanged):
                await self.store.remember_district(event.market_id, district)
                districts[event.market_id] = district
            counted.append(self._counted(event, envelope, district))
            if self.facts is not None:
                await self.facts.on_event(event, envelope, writes)
            if self.feed is not None:
                entries.append(self._entry(event, envelope, district))
        await self.store.count_many(counted)
        if self.facts is not None:
            await self.facts.store.write(writes)
        if self.feed is not None:
            await self.feed.append_many(entries)

    @staticmethod
    def _counted(event: Event, envelope: RawEnvelope, district: str | None) -> CountedEvent:
        return CountedEvent(
            event_id=envelope.id,
            event_type=envelope.type,
            market_id=event.market_id,
            district=district,
        )

    @staticmethod
    def _entry(event: Event, envelope: RawEnvelope, district: str | None) -> NewEntry:
        summary_zh, summary_en = summarize(event)
        return NewEntry(
            event_id=envelope.id,
            type=short_type(envelope.type),
            market_id=event.market_id,
            district=district,
            time=envelope.time,
            summary_zh=summary_zh,
            summary_en=summary_en,
            event=envelope.model_dump(mode="json"),
        )


def subscribe_everything(
    broker: KafkaBroker, settings: ReportingSettings, redis: RedisClient, counter: EventCounter
) -> None:
    """Register the subscriber of all topics on ``broker`` (before the app is built)."""
    subscribe_events(
        broker,
        settings,
        redis,
        topics=TOPICS,
        group_id=settings.consumer_group,
        handlers=dict.fromkeys(ALL_EVENTS, counter.on_event),
        # Every write counts or appends an event once (by its id) or sets a fact idempotently:
        # the consumer's own dedup marks would be two more round trips per event for nothing,
        # and a partition's events of a batch can go in a few round trips together.
        dedupe=False,
        batch_handler=counter.on_batch,
    )
