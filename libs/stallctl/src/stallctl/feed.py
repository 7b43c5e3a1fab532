"""``stallctl feed --district X``: follow a district's events live from Kafka, one readable
line each (zh, en or both), the way a district's IT would consume the topics directly.

It joins no consumer group (partitions are assigned, nothing is committed), so it disturbs no
service. Events that do not carry their district (bookings) are placed by their market: the
catalogue topic is read from the beginning first, and followed, to learn each market's district.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.envelope import RawEnvelope
from contracts.events import EVENTS_BY_TYPE, MarketChanged
from contracts.summaries import short_type, summarize
from contracts.topics import TOPICS
from stallkit.clock import MARKET_TZ
from stallkit.settings import CommonSettings

FEED_TOPICS = ("catalogue", "bookings", "windows", "inspection")


class Language(StrEnum):
    """Which summary a line shows."""

    ZH = "zh"
    EN = "en"
    BOTH = "both"


def district_of(data: dict[str, Any], districts: dict[str, str]) -> str | None:
    """The district an event belongs to: its own field, else its market's."""
    if isinstance(data.get("district"), str):
        return str(data["district"])
    market = data.get("market")
    if isinstance(market, dict) and isinstance(market.get("district"), str):
        return str(market["district"])
    return districts.get(str(data.get("market_id", "")))


def line(envelope: RawEnvelope, language: Language) -> str:
    """One readable line for an event."""
    cls = EVENTS_BY_TYPE.get(envelope.type)
    when = envelope.time.astimezone(MARKET_TZ).strftime("%m-%d %H:%M:%S")
    kind = short_type(envelope.type)
    if cls is None:
        zh = en = f"{kind} {envelope.subject}"
    else:
        zh, en = summarize(envelope.parse_data(cls))
    text = {Language.ZH: zh, Language.EN: en, Language.BOTH: f"{zh} | {en}"}[language]
    return f"{when}  {envelope.marketid:<6} {kind:<32} {text}"


async def follow(
    settings: CommonSettings,
    district: str,
    *,
    out: TextIO,
    language: Language = Language.BOTH,
    from_beginning: bool = False,
    types: set[str] | None = None,
    as_json: bool = False,
    stop: Callable[[int], bool] | None = None,
    ready: asyncio.Event | None = None,
) -> int:
    """Print the district's events (``all``: every district's) until ``stop(printed)`` holds;
    ``ready`` is set once the positions are taken (what is published after it is shown)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        request_timeout_ms=10_000,
    )
    await consumer.start()
    printed = 0
    districts: dict[str, str] = {}
    try:
        names = {settings.topic(TOPICS[t].name): t for t in FEED_TOPICS}
        present = await consumer.topics()
        tps = [
            TopicPartition(topic, p)
            for topic in names
            if topic in present
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(tps)
        catalogue = [tp for tp in tps if names[tp.topic] == "catalogue"]
        others = [tp for tp in tps if names[tp.topic] != "catalogue"]
        # The catalogue from its start (to learn markets' districts); the rest from now, or
        # from their start too.
        await consumer.seek_to_beginning(*catalogue)
        if from_beginning:
            await consumer.seek_to_beginning(*others)
        else:
            await consumer.seek_to_end(*others)
        catalogue_ends: dict[TopicPartition, int] = await consumer.end_offsets(catalogue)
        for tp in others:
            await consumer.position(tp)  # resolve "now" before anything new is published
        if ready is not None:
            ready.set()
        while stop is None or not stop(printed):
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    try:
                        envelope = RawEnvelope.from_bytes(record.value)
                    except ValueError:
                        continue  # not an event: the dead-letter tooling shows those
                    data = envelope.data
                    if envelope.type == MarketChanged.event_type():
                        found = district_of(data, {})
                        if found:
                            districts[envelope.marketid] = found
                    backlog = names[tp.topic] == "catalogue" and record.offset < catalogue_ends.get(
                        tp, 0
                    )
                    if backlog and not from_beginning:
                        continue  # read to learn districts, not shown
                    if district != "all" and district_of(data, districts) != district:
                        continue
                    if types and short_type(envelope.type) not in types:
                        continue
                    if as_json:
                        out.write(json.dumps(envelope.model_dump(mode="json"), ensure_ascii=False))
                    else:
                        out.write(line(envelope, language))
                    out.write("\n")
                    out.flush()
                    printed += 1
                    if stop is not None and stop(printed):
                        return printed
    finally:
        await consumer.stop()
    return printed


def run(
    settings: CommonSettings,
    district: str,
    out: TextIO,
    **options: Any,
) -> int:
    """:func:`follow` until interrupted (Ctrl-C)."""
    try:
        return asyncio.run(follow(settings, district, out=out, **options))
    except KeyboardInterrupt:
        return 0
