"""Contract tests: events round-trip, examples validate, readers tolerate newer producers."""

from __future__ import annotations

import gc
import json
import re
import weakref
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts.asyncapi import DEFAULT_OUTPUT, build_asyncapi, render_asyncapi
from contracts.catalogue import Catalogue, Category, Location, Market, MarketWindow, Stall
from contracts.envelope import EVENT_TYPE_PREFIX, Envelope, Event, RawEnvelope
from contracts.events import ALL_EVENTS, EVENTS_BY_TYPE
from contracts.examples import WHEN, example_of
from contracts.topics import TOPICS

CATALOGUE_MODELS: tuple[type[BaseModel], ...] = (Location, MarketWindow, Market, Stall, Catalogue)


def _event_id(event: type[Event]) -> str:
    return event.__name__


# --- (a) round trip ----------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("event_cls", ALL_EVENTS, ids=_event_id)
def test_event_round_trips_in_envelope(event_cls: type[Event]) -> None:
    event = example_of(event_cls)
    envelope = Envelope.wrap(event, source="/services/test", time=WHEN)

    body = envelope.model_dump_json().encode()
    parsed = Envelope[event_cls].model_validate_json(body)  # type: ignore[valid-type]

    assert parsed == envelope
    assert parsed.data == event
    assert parsed.type == event_cls.event_type()
    assert parsed.marketid == event.market_id
    assert parsed.subject == event.subject()

    raw = RawEnvelope.from_bytes(body)
    assert EVENTS_BY_TYPE[raw.type] is event_cls
    assert raw.parse_data(event_cls) == event


@pytest.mark.unit
def test_envelope_keeps_a_given_event_id() -> None:
    event = example_of(ALL_EVENTS[0])
    envelope = Envelope.wrap(event, source="/services/test", time=WHEN, event_id="evt-1")
    assert envelope.id == "evt-1"


# --- (b) examples validate ---------------------------------------------------------------------


def _declared_examples() -> list[Any]:
    models: tuple[type[BaseModel], ...] = (*ALL_EVENTS, *CATALOGUE_MODELS, Envelope, RawEnvelope)
    cases = []
    for model in models:
        for name, field in model.model_fields.items():
            for i, example in enumerate(field.examples or []):
                cases.append(pytest.param(model, name, example, id=f"{model.__name__}.{name}[{i}]"))
    return cases


@pytest.mark.unit
@pytest.mark.parametrize(("model", "field_name", "example"), _declared_examples())
def test_field_example_validates(model: type[BaseModel], field_name: str, example: Any) -> None:
    field = model.model_fields[field_name]
    # The field's constraints (pattern, lengths, bounds) live in its metadata.
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[annotation, *field.metadata]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    # Examples are published in the JSON schema, so they must validate as JSON.
    adapter.validate_json(json.dumps(example))


@pytest.mark.unit
def test_examples_are_declared() -> None:
    assert len(_declared_examples()) > 30


# --- (c) tolerant reader -----------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("event_cls", ALL_EVENTS, ids=_event_id)
def test_unknown_fields_from_newer_producers_are_ignored(event_cls: type[Event]) -> None:
    event = example_of(event_cls)
    data = event.model_dump(mode="json") | {"added_by_a_newer_producer": {"nested": [1, 2]}}
    envelope = Envelope.wrap(event, source="/services/test", time=WHEN).model_dump(mode="json")
    envelope |= {"data": data, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-01"}

    assert event_cls.model_validate_json(json.dumps(data)) == event
    raw = RawEnvelope.from_bytes(json.dumps(envelope))
    assert raw.parse_data(event_cls) == event
    assert Envelope[event_cls].model_validate(envelope).data == event  # type: ignore[valid-type]


# --- (d) event types and topics ----------------------------------------------------------------


@pytest.mark.unit
def test_event_types_are_unique() -> None:
    types_ = [e.event_type() for e in ALL_EVENTS]
    assert len(set(types_)) == len(types_)
    assert len(EVENTS_BY_TYPE) == len(ALL_EVENTS)


@pytest.mark.unit
@pytest.mark.parametrize("event_cls", ALL_EVENTS, ids=_event_id)
def test_event_type_is_versioned_and_topic_known(event_cls: type[Event]) -> None:
    event_type = event_cls.event_type()
    assert event_type.startswith(EVENT_TYPE_PREFIX + ".")
    assert re.search(r"\.v\d+$", event_type)
    assert event_type.endswith(f".v{event_cls.event_version}")
    assert event_cls.topic in TOPICS
    # The name is the class's own, not one inherited from a base event by mistake.
    assert "event_name" in vars(event_cls)


def _concrete_events(base: type[Event]) -> set[type[Event]]:
    found: set[type[Event]] = set()
    for sub in base.__subclasses__():
        if "event_name" in vars(sub):
            found.add(sub)
        found |= _concrete_events(sub)
    return found


@pytest.mark.unit
def test_every_named_event_is_registered() -> None:
    # Envelope[X] parametrisations are not Event subclasses, so only real events are found.
    assert _concrete_events(Event) <= set(ALL_EVENTS)


# --- (e) AsyncAPI document ---------------------------------------------------------------------


@pytest.mark.unit
def test_checked_in_asyncapi_is_current() -> None:
    checked_in = DEFAULT_OUTPUT.read_text(encoding="utf-8") if DEFAULT_OUTPUT.is_file() else ""
    assert checked_in == render_asyncapi(), (
        f"{DEFAULT_OUTPUT} is stale: run `make asyncapi` "
        "(uv run python -m contracts.asyncapi) and commit the result"
    )
    assert json.loads(checked_in) == build_asyncapi()


@pytest.mark.unit
def test_asyncapi_is_deterministic() -> None:
    assert render_asyncapi() == render_asyncapi()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.unit
def test_asyncapi_refs_resolve_and_every_event_has_a_channel() -> None:
    doc = build_asyncapi()
    for ref in _refs(doc):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]

    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == set(TOPICS)
    for key, topic in TOPICS.items():
        channel = doc["channels"][key]
        assert channel["address"] == topic.name
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions
        assert doc["operations"][f"send_{key}"]["action"] == "send"
    for event_cls in ALL_EVENTS:
        assert event_cls.__name__ in doc["channels"][event_cls.topic]["messages"]


@pytest.mark.unit
def test_asyncapi_main_writes_the_document(tmp_path: Path) -> None:
    from contracts.asyncapi import main

    out = tmp_path / "asyncapi.json"
    main(["asyncapi", str(out)])
    assert out.read_text(encoding="utf-8") == render_asyncapi()


# --- (f) catalogue validators ------------------------------------------------------------------


def _window(**changes: Any) -> dict[str, Any]:
    return {
        "id": "evening",
        "name_zh": "夜市",
        "name_en": "Evening market",
        "days": [1, 2, 3, 4, 5, 6, 7],
        "start": "17:30",
        "end": "22:30",
        **changes,
    }


def _market(market_id: str = "XZ-03", **changes: Any) -> dict[str, Any]:
    return {
        "id": market_id,
        "district": "xiangzhou",
        "name_zh": "前山便民市场",
        "name_en": "Qianshan Market",
        "location": {"lat": 22.2568, "lon": 113.5214},
        "zones": ["cooked_food", "daily_goods"],
        "windows": [_window()],
        **changes,
    }


def _stall(stall_id: str = "XZ-03-A001", category: str = "cooked_food") -> dict[str, Any]:
    return {"id": stall_id, "market_id": stall_id[:5], "category": category}


@pytest.mark.unit
def test_valid_catalogue_fixture_is_accepted() -> None:
    catalogue = Catalogue.model_validate(
        {"markets": [_market()], "stalls": [_stall(), _stall("XZ-03-C001", "daily_goods")]}
    )
    assert catalogue.markets[0].window("evening") is not None
    assert catalogue.stalls[1].category is Category.DAILY_GOODS


@pytest.mark.unit
@pytest.mark.parametrize(
    ("start", "end"), [("22:30", "17:30"), ("17:30", "17:30")], ids=["before", "equal"]
)
def test_window_end_must_follow_start(start: str, end: str) -> None:
    with pytest.raises(ValidationError, match="window end must be after its start"):
        MarketWindow.model_validate(_window(start=start, end=end))


@pytest.mark.unit
def test_window_days_must_not_repeat() -> None:
    with pytest.raises(ValidationError, match="must not repeat"):
        MarketWindow.model_validate(_window(days=[6, 7, 6]))


@pytest.mark.unit
def test_market_window_ids_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="window ids must be unique"):
        Market.model_validate(_market(windows=[_window(), _window(start="18:00")]))


@pytest.mark.unit
def test_stall_id_must_match_its_market() -> None:
    with pytest.raises(ValidationError, match="must start with its market id"):
        Stall.model_validate({"id": "XZ-03-A001", "market_id": "XZ-04", "category": "services"})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Stall, _stall("XZ-3-A001")),
        (Stall, _stall("XZ-03-A01")),
        (Market, _market("xz-03")),
        (MarketWindow, _window(id="Evening")),
        (MarketWindow, _window(days=[0])),
        (Location, {"lat": 40.0, "lon": 113.5}),
    ],
    ids=[
        "stall-short-market",
        "stall-short-number",
        "market-lowercase",
        "window-id",
        "day-0",
        "lat",
    ],
)
def test_malformed_values_are_rejected(model: type[BaseModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


@pytest.mark.unit
def test_stall_category_must_be_a_zone_of_its_market() -> None:
    with pytest.raises(ValidationError, match="category has no zone"):
        Catalogue.model_validate(
            {"markets": [_market()], "stalls": [_stall("XZ-03-B001", "fresh_produce")]}
        )


@pytest.mark.unit
def test_duplicate_stall_ids_are_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate stall id XZ-03-A001"):
        Catalogue.model_validate({"markets": [_market()], "stalls": [_stall(), _stall()]})


@pytest.mark.unit
def test_duplicate_market_ids_are_rejected() -> None:
    with pytest.raises(ValidationError, match="market ids must be unique"):
        Catalogue.model_validate({"markets": [_market(), _market()], "stalls": []})


@pytest.mark.unit
def test_stall_of_unknown_market_is_rejected() -> None:
    with pytest.raises(ValidationError, match="names unknown market XZ-09"):
        Catalogue.model_validate({"markets": [_market()], "stalls": [_stall("XZ-09-A001")]})


@pytest.mark.unit
def test_catalogue_document_rejects_unknown_top_level_keys() -> None:
    with pytest.raises(ValidationError):
        Catalogue.model_validate({"markets": [], "stalls": [], "vendors": []})


def test_wrapping_reuses_one_envelope_model_per_event_type() -> None:
    # pydantic caches Envelope[T] only weakly: without a strong reference the model class was
    # rebuilt (schema generation, milliseconds) after every garbage collection, on the hot path.
    event = example_of(EVENTS_BY_TYPE["cn.gov.zhuhai.markets.booking.created.v1"])
    model = weakref.ref(type(Envelope.wrap(event, source="/t", time=WHEN)))
    gc.collect()
    assert model() is not None
    assert type(Envelope.wrap(event, source="/t", time=WHEN)) is model()
