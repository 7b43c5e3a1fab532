"""Build the AsyncAPI 3.0.0 document from the event models and topics.

Run ``uv run python -m contracts.asyncapi [PATH]`` to (re)write ``contracts/asyncapi.json``.
"""

from __future__ import annotations

import json
import re
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from contracts.catalogue import MARKET_ID_PATTERN
from contracts.envelope import EVENT_TYPE_PREFIX, Envelope, Event
from contracts.events import ALL_EVENTS
from contracts.topics import (
    DLQ_CONSUMER_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SOURCE_TOPIC_HEADER,
    TOPICS,
)

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMA_REF_TEMPLATE = "#/components/schemas/{model}"
DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "asyncapi.json"
DEAD_LETTER_MESSAGE = "DeadLetteredMessage"

_MARKET_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": MARKET_ID_PATTERN,
    "description": "Market id; every event of one market goes to one partition, in order.",
    "examples": ["XZ-03"],
}


def _title(event: type[Event]) -> str:
    """``BookingNoShow`` → ``Booking no show``."""
    words = re.findall(r"[A-Z][a-z0-9]*", event.__name__)
    return " ".join([words[0], *(w.lower() for w in words[1:])])


def _hoist(defs: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Move ``$defs`` into ``components.schemas``; a name must always mean the same schema."""
    for name, schema in defs.items():
        known = schemas.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are both named {name!r}")


def _event_message(event: type[Event], schemas: dict[str, Any]) -> dict[str, Any]:
    """The AsyncAPI message for one event: its envelope as payload, keyed by market id."""
    payload = Envelope[event].model_json_schema(ref_template=SCHEMA_REF_TEMPLATE)  # type: ignore[valid-type]
    _hoist(payload.pop("$defs", {}), schemas)
    return {
        "name": event.__name__,
        "title": _title(event),
        "summary": (event.__doc__ or "").strip(),
        "description": (
            f"CloudEvents type `{event.event_type()}`, published on the "
            f"`{TOPICS[event.topic].name}` topic with the market id as key."
        ),
        "contentType": "application/json",
        "x-event-type": event.event_type(),
        "payload": payload,
        "bindings": {"kafka": {"key": _MARKET_KEY_SCHEMA, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _dead_letter_message() -> dict[str, Any]:
    """The message on the dead-letter topic: the original value plus headers saying why."""

    def header(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "Dead-lettered message",
        "summary": "A message a consumer could not process, with the reason in its headers.",
        "headers": {
            "type": "object",
            "properties": {
                DLQ_REASON_HEADER: header("Why the consumer gave up on the message."),
                DLQ_SOURCE_TOPIC_HEADER: header("Topic the message was consumed from."),
                DLQ_CONSUMER_HEADER: header("Consumer group that dead-lettered it."),
            },
            "required": [DLQ_REASON_HEADER, DLQ_SOURCE_TOPIC_HEADER, DLQ_CONSUMER_HEADER],
        },
        "payload": {"description": "The original message value, unchanged."},
        "bindings": {"kafka": {"key": _MARKET_KEY_SCHEMA, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def build_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document for every topic and event in the contracts."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channel_messages: dict[str, list[str]] = {key: [] for key in TOPICS}

    for event in ALL_EVENTS:
        name = event.__name__
        if name in messages:
            raise ValueError(f"two events are both named {name!r}")
        messages[name] = _event_message(event, schemas)
        channel_messages[event.topic].append(name)
    if "dead_letter" in TOPICS:
        messages[DEAD_LETTER_MESSAGE] = _dead_letter_message()
        channel_messages["dead_letter"].append(DEAD_LETTER_MESSAGE)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for key, topic in TOPICS.items():
        names = channel_messages[key]
        channels[key] = {
            "address": topic.name,
            "title": topic.name,
            "description": topic.description,
            "x-partitions": topic.partitions,
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"send_{key}"] = {
            "action": "send",
            "title": f"Publish to {topic.name}",
            "summary": topic.description,
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{n}"} for n in names],
        }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Zhuhai double-limit markets: events",
            "version": version("contracts"),
            "description": (
                "Events exchanged by the allocation, windows, inspection and reporting services. "
                "Each Kafka message value is a CloudEvents 1.0 JSON envelope whose `type` is "
                f"`{EVENT_TYPE_PREFIX}.<event>.v<version>`; the key is the market id."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render_asyncapi() -> str:
    """The AsyncAPI document as the exact text checked in to ``contracts/asyncapi.json``."""
    return json.dumps(build_asyncapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the AsyncAPI document to ``argv[1]`` or ``contracts/asyncapi.json``."""
    args = sys.argv if argv is None else argv
    path = Path(args[1]) if len(args) > 1 else DEFAULT_OUTPUT
    path.write_text(render_asyncapi(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
