"""The CloudEvents-style envelope every event travels in."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

EVENT_TYPE_PREFIX = "cn.gov.zhuhai.markets"


class Event(BaseModel):
    """Base of every event payload: frozen, tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: Short dotted name without the prefix and version, e.g. ``booking.created``.
    event_name: ClassVar[str]
    #: Contract version; a change that is not backward compatible is a new version.
    event_version: ClassVar[int] = 1
    #: Topic (key in :data:`contracts.topics.TOPICS`) the event is published on.
    topic: ClassVar[str]

    market_id: str = Field(
        description="Market the event concerns; also the Kafka partition key.",
        examples=["XZ-03"],
    )

    @classmethod
    def event_type(cls) -> str:
        """Full CloudEvents type with version: ``cn.gov.zhuhai.markets.booking.created.v1``."""
        return f"{EVENT_TYPE_PREFIX}.{cls.event_name}.v{cls.event_version}"

    def subject(self) -> str:
        """CloudEvents subject: the entity the event is about (overridden by events)."""
        return self.market_id


E = TypeVar("E", bound=Event)


class Envelope(BaseModel, Generic[E]):
    """CloudEvents 1.0 attributes around one event; ``marketid`` is an extension attribute."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: str = Field(default="1.0", description="CloudEvents spec version.")
    id: str = Field(
        description="Unique, stable event id; consumers deduplicate on it.",
        examples=["0193a1c2-5b7e-7c1a-9d3e-2f4b6a8c0d1e"],
    )
    source: str = Field(description="Producing service.", examples=["/services/allocation"])
    type: str = Field(
        description="Event type with version.",
        examples=["cn.gov.zhuhai.markets.booking.created.v1"],
    )
    time: datetime = Field(description="When the fact happened (service clock, UTC).")
    subject: str = Field(description="Entity the event is about.", examples=["bk_01J9Z..."])
    datacontenttype: str = Field(default="application/json")
    marketid: str = Field(description="Market id, equal to the Kafka key.", examples=["XZ-03"])
    data: E

    @classmethod
    def wrap(
        cls,
        event: E,
        *,
        source: str,
        time: datetime,
        event_id: str | None = None,
    ) -> Envelope[E]:
        """Put ``event`` in an envelope with a fresh (or given) stable id."""
        return _parametrized(builtins.type(event))(  # type: ignore[no-any-return]
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=event.event_type(),
            time=time,
            subject=event.subject(),
            marketid=event.market_id,
            data=event,
        )


#: ``Envelope[EventType]`` per event type, held here: pydantic caches parametrized generics
#: only weakly, so without a strong reference each wrap could build the model class anew.
_ENVELOPES: dict[builtins.type[Any], builtins.type[Any]] = {}


def _parametrized(event_type: builtins.type[Any]) -> builtins.type[Any]:
    model = _ENVELOPES.get(event_type)
    if model is None:
        model = _ENVELOPES[event_type] = Envelope[event_type]  # type: ignore[valid-type]
    return model


class RawEnvelope(BaseModel):
    """Envelope whose data is left unparsed: routing and deduplication without the body."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    subject: str
    marketid: str
    data: dict[str, Any]

    def parse_data(self, model: builtins.type[E]) -> E:
        """Validate ``data`` as the given event model."""
        return model.model_validate(self.data)

    @classmethod
    def from_bytes(cls, body: bytes | str) -> Self:
        """Parse a raw Kafka message value."""
        return cls.model_validate_json(body)
