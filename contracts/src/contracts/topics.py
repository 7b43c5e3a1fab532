"""Topic names and partition counts: the one place they are defined."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    """A Kafka topic and how many partitions it has."""

    name: str
    partitions: int
    description: str


CATALOGUE = Topic("markets.catalogue.v1", 6, "Markets, stalls and schedules as they change.")
BOOKINGS = Topic("markets.bookings.v1", 12, "Booking lifecycle, keyed by market.")
WINDOWS = Topic("markets.windows.v1", 6, "Window timeline and market suspensions.")
INSPECTION = Topic("markets.inspection.v1", 6, "Scans, warnings and case lifecycle.")
DEAD_LETTER = Topic("markets.deadletter.v1", 1, "Messages a consumer could not process.")

TOPICS: dict[str, Topic] = {
    "catalogue": CATALOGUE,
    "bookings": BOOKINGS,
    "windows": WINDOWS,
    "inspection": INSPECTION,
    "dead_letter": DEAD_LETTER,
}

#: Headers set on dead-lettered messages.
DLQ_REASON_HEADER = "dlq-reason"
DLQ_SOURCE_TOPIC_HEADER = "dlq-source-topic"
DLQ_CONSUMER_HEADER = "dlq-consumer"
