"""``stallctl dlq``: list the dead-letter topic and replay messages to their source topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from contracts.topics import (
    DEAD_LETTER,
    DLQ_CONSUMER_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    TOPICS,
)
from stallkit.settings import CommonSettings

#: Headers that belong to the dead-letter topic, not to the message: dropped on replay.
DLQ_HEADER_PREFIX = "dlq-"
#: Same as ``stallkit.messaging.DLQ_REPLAYED_FROM_HEADER`` (not imported: that pulls FastStream).
REPLAYED_FROM_HEADER = "dlq-replayed-from"
#: Same as ``stallkit.messaging.DLQ_TIME_HEADER``.
TIME_HEADER = "dlq-time"

app = typer.Typer(
    name="dlq",
    help="死信 / Dead-letter topic: list what consumers could not process, replay it.",
    no_args_is_help=True,
)


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter topic, as it was dead-lettered."""

    topic: str
    partition: int
    offset: int
    time: datetime
    key: bytes | None
    body: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        """The value of header ``name`` as text ('' when absent)."""
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return ""

    @property
    def source_topic(self) -> str:
        """The topic the message was consumed from."""
        return self.header(DLQ_SOURCE_TOPIC_HEADER)

    @property
    def consumer(self) -> str:
        """The consumer that dead-lettered it: ``<service>/<group>``."""
        return self.header(DLQ_CONSUMER_HEADER)

    @property
    def reason(self) -> str:
        """Why it could not be processed."""
        return self.header(DLQ_REASON_HEADER)

    @property
    def event(self) -> tuple[str | None, str | None]:
        """Event id and type, when the body is a JSON object that has them."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return None, None
        if not isinstance(data, dict):
            return None, None
        event_id, event_type = data.get("id"), data.get("type")
        return (
            event_id if isinstance(event_id, str) else None,
            event_type if isinstance(event_type, str) else None,
        )

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (no ``dlq-*`` ones) plus where this replay comes from."""
        kept = [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]
        origin = f"{self.topic}:{self.partition}:{self.offset}"
        return [*kept, (REPLAYED_FROM_HEADER, origin.encode())]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``--json``)."""
        event_id, event_type = self.event
        return {
            "partition": self.partition,
            "offset": self.offset,
            "time": self.time.isoformat(),
            "source_topic": self.source_topic,
            "consumer": self.consumer,
            "event_id": event_id,
            "event_type": event_type,
            "key": None if self.key is None else self.key.decode(errors="replace"),
            "reason": self.reason,
            "dead_lettered_at": self.header(TIME_HEADER) or None,
            "replayed_from": self.header(REPLAYED_FROM_HEADER) or None,
            "headers": {
                k: v.decode(errors="replace")
                for k, v in self.headers
                if not k.startswith(DLQ_HEADER_PREFIX)
            },
            "body": self.body.decode(errors="replace"),
        }


@dataclass(frozen=True)
class Replayed:
    """A dead letter sent back to its source topic, and where it landed."""

    dead_letter: DeadLetter
    partition: int
    offset: int


async def read_dead_letters(settings: CommonSettings, timeout: float = 30.0) -> list[DeadLetter]:
    """Every message of the dead-letter topic, from the beginning; commits nothing."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stallkit.topics import read_to_end

    topic = settings.topic(DEAD_LETTER.name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,  # no group: nothing is committed, no other reader is disturbed
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            if topic not in await consumer.topics():
                return []
            partitions = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            read = await read_to_end(consumer, tps)
            records = [r for tp in tps for r in read[tp]]
    finally:
        await consumer.stop()
    return [
        DeadLetter(
            topic=topic,
            partition=r.partition,
            offset=r.offset,
            time=datetime.fromtimestamp(r.timestamp / 1000, UTC),
            key=r.key,
            body=r.value or b"",
            headers=tuple((k, bytes(v or b"")) for k, v in r.headers or ()),
        )
        for r in records
    ]


def select(
    entries: Iterable[DeadLetter],
    settings: CommonSettings,
    *,
    consumer: str | None = None,
    source_topic: str | None = None,
) -> list[DeadLetter]:
    """The entries of ``consumer`` (``service/group``) and ``source_topic``, when given.

    A topic may be named in full, without the deployment's prefix, or by its short name
    (``bookings``).
    """
    topics: set[str] = set()
    if source_topic is not None:
        name = TOPICS[source_topic].name if source_topic in TOPICS else source_topic
        topics = {source_topic, name, settings.topic(name)}
    return [
        e
        for e in entries
        if (consumer is None or e.consumer == consumer)
        and (source_topic is None or e.source_topic in topics)
    ]


async def replay(settings: CommonSettings, entries: Sequence[DeadLetter]) -> list[Replayed]:
    """Send each entry to its source topic with its key, body and original headers."""
    from aiokafka import AIOKafkaProducer

    missing = [e.offset for e in entries if not e.source_topic]
    if missing:
        raise ValueError(f"no source topic recorded at offset(s) {missing}")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=10_000,
    )
    await producer.start()
    sent: list[Replayed] = []
    try:
        for entry in entries:
            meta = await producer.send_and_wait(
                entry.source_topic, entry.body, key=entry.key, headers=entry.replay_headers()
            )
            sent.append(Replayed(entry, meta.partition, meta.offset))
    finally:
        await producer.stop()
    return sent


def _settings() -> CommonSettings:
    try:
        return CommonSettings()
    except ValidationError as exc:
        typer.echo(f"invalid settings in the environment: {exc}", err=True)
        raise typer.Exit(2) from exc


def _read(
    settings: CommonSettings, consumer: str | None, source_topic: str | None
) -> list[DeadLetter]:
    try:
        entries = asyncio.run(read_dead_letters(settings))
    except Exception as exc:
        typer.echo(f"✗ {settings.kafka_bootstrap_servers}: {exc!r}", err=True)
        raise typer.Exit(1) from exc
    return select(entries, settings, consumer=consumer, source_topic=source_topic)


def _describe(entry: DeadLetter) -> str:
    event_id, event_type = entry.event
    key = "-" if entry.key is None else entry.key.decode(errors="replace")
    lines = [
        f"offset {entry.offset}  {entry.time.isoformat(timespec='seconds')}  "
        f"from {entry.source_topic or '?'}  by {entry.consumer or '?'}",
        f"  event {event_id or '-'}  {event_type or '(body is not an event)'}  key {key}",
    ]
    if replayed_from := entry.header(REPLAYED_FROM_HEADER):
        lines.append(f"  a replay of {replayed_from}")
    reason = entry.reason.replace("\n", "\n          ")
    lines.append(f"  reason: {reason}")
    return "\n".join(lines)


ConsumerOption = Annotated[
    str | None,
    typer.Option(
        "--consumer", help="Only what this consumer dead-lettered, e.g. reporting/reporting."
    ),
]
SourceTopicOption = Annotated[
    str | None,
    typer.Option("--source-topic", help="Only messages from this topic, e.g. bookings."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command("list")
def list_dead_letters(
    consumer: ConsumerOption = None,
    source_topic: SourceTopicOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the dead-letter topic from the beginning (commits nothing)."""
    settings = _settings()
    entries = _read(settings, consumer, source_topic)
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], ensure_ascii=False, indent=2))
        return
    topic = settings.topic(DEAD_LETTER.name)
    typer.echo(f"死信 / dead letters in {topic}: {len(entries)}")
    for entry in entries:
        typer.echo(_describe(entry))


@app.command("replay")
def replay_dead_letters(
    offsets: Annotated[
        list[int] | None,
        typer.Option("--offset", min=0, help="Offset of a dead letter to replay (repeatable)."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter that matches the filters.")
    ] = False,
    consumer: ConsumerOption = None,
    source_topic: SourceTopicOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send dead letters back to their source topic (same key, body, headers; marked replayed)."""
    if not offsets and not all_:
        raise typer.BadParameter("name dead letters with --offset N, or pass --all")
    if offsets and all_:
        raise typer.BadParameter("--offset and --all exclude each other")
    settings = _settings()
    entries = _read(settings, consumer, source_topic)
    if offsets:
        found = {e.offset for e in entries}
        unknown = sorted(set(offsets) - found)
        if unknown:
            typer.echo(f"✗ no such dead letter (with these filters): offset {unknown}", err=True)
            raise typer.Exit(1)
        entries = [e for e in entries if e.offset in set(offsets)]
    try:
        sent = asyncio.run(replay(settings, entries))
    except Exception as exc:
        typer.echo(f"✗ replay failed: {exc!r}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        rows = [
            {
                **r.dead_letter.as_dict(),
                "replayed_to": {"partition": r.partition, "offset": r.offset},
            }
            for r in sent
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    typer.echo(f"已重放 / replayed: {len(sent)}")
    for r in sent:
        event_id, event_type = r.dead_letter.event
        key = "-" if r.dead_letter.key is None else r.dead_letter.key.decode(errors="replace")
        typer.echo(
            f"offset {r.dead_letter.offset} → {r.dead_letter.source_topic} "
            f"(partition {r.partition}, offset {r.offset})  key {key}  "
            f"event {event_id or '-'} {event_type or ''}".rstrip()
        )
