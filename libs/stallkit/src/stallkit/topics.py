"""``python -m stallkit.topics``: create the contract topics, waiting for the broker to answer.

The names and partition counts come from :mod:`contracts.topics`; production's one-shot
``kafka-init`` step runs this module in a service image, the embedded runtime calls
:func:`ensure_topics_when_reachable`. Topics that exist already are kept as they are.
:func:`read_to_end` reads partitions to their end (the tools and tests that read a topic whole).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.topics import TOPICS
from stallkit.messaging import ensure_topics

log = logging.getLogger("stallkit.topics")

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_TIMEOUT_SECONDS = 120.0


async def ensure_topics_when_reachable(
    bootstrap_servers: str,
    prefix: str = "",
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    retry_seconds: float = 1.0,
) -> list[str]:
    """:func:`ensure_topics`, retried until it succeeds; the last error once ``timeout`` passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await ensure_topics(bootstrap_servers, prefix)
        except Exception as exc:
            if loop.time() + retry_seconds > deadline:
                raise
            log.warning("topics not created yet (%r), retrying in %.0fs", exc, retry_seconds)
            await asyncio.sleep(retry_seconds)


async def read_to_end(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], *, poll_ms: int = 200
) -> dict[TopicPartition, list[Any]]:
    """Every record of ``partitions`` (assigned to ``consumer``) from its position to the end.

    A partition's end is the high watermark its first fetch reports, not what ``end_offsets``
    answers: the embedded broker (Tansu) answers ListOffsets with the last record *batch*'s
    base offset + 1, so reading up to that would leave out the rest of the batch (several dead
    letters, or events, produced together). Records appended after that first fetch are not
    read. No group: nothing is committed.
    """
    ends: dict[TopicPartition, int] = {}
    records: dict[TopicPartition, list[Any]] = {tp: [] for tp in partitions}
    pending = set(partitions)
    while pending:
        fetched = await consumer.getmany(*pending, timeout_ms=poll_ms)
        for tp in list(pending):
            if tp not in ends:
                highwater = consumer.highwater(tp)
                if highwater is None:  # no fetch of it answered yet
                    continue
                ends[tp] = highwater
            records[tp].extend(r for r in fetched.get(tp, ()) if r.offset < ends[tp])
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """Create the topics on KAFKA_BOOTSTRAP_SERVERS, print what was created; 1 on failure."""
    parser = argparse.ArgumentParser(
        prog="python -m stallkit.topics",
        description="Create the contract topics (existing ones are kept).",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP,
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else %(default)s).",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("STALL_TOPIC_PREFIX", ""),
        help="Prefix of every topic name (default: $STALL_TOPIC_PREFIX, empty).",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="Seconds to keep retrying while the broker does not answer (default: %(default)s).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        created = asyncio.run(
            ensure_topics_when_reachable(args.bootstrap_servers, args.prefix, timeout=args.timeout)
        )
    except Exception as exc:
        print(f"could not create the topics on {args.bootstrap_servers}: {exc!r}", file=sys.stderr)
        return 1
    partitions = {args.prefix + t.name: t.partitions for t in TOPICS.values()}
    for name in created:
        print(f"created {name} ({partitions[name]} partitions)")
    kept = len(partitions) - len(created)
    print(f"{len(created)} topics created, {kept} already there, on {args.bootstrap_servers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
