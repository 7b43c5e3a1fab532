"""Catalogue values in JSON are what the schema says: window times ``HH:MM[:SS]``, booleans."""

from __future__ import annotations

import re
from datetime import UTC, time
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.catalogue import LOCAL_TIME_PATTERN, MarketWindow, Stall

pytestmark = pytest.mark.unit


def _window(start: Any, end: Any = "22:30") -> dict[str, Any]:
    return {"id": "evening", "name_zh": "夜市", "name_en": "Evening market", "days": [1],
            "start": start, "end": end}  # fmt: skip


def test_the_schema_declares_the_pattern_not_rfc3339_time() -> None:
    for mode in ("validation", "serialization"):
        start = MarketWindow.model_json_schema(mode=mode)["properties"]["start"]
        assert start["type"] == "string"
        assert start["pattern"] == LOCAL_TIME_PATTERN
        assert "format" not in start  # format: time needs an offset that local times lack


@pytest.mark.parametrize("given", ["17:30", "17:30:00", time(17, 30)])
def test_times_are_emitted_as_hh_mm_ss_which_the_pattern_matches(given: Any) -> None:
    window = MarketWindow.model_validate(_window(given))
    assert window.start == time(17, 30)
    emitted = window.model_dump(mode="json")
    assert (emitted["start"], emitted["end"]) == ("17:30:00", "22:30:00")
    assert re.fullmatch(LOCAL_TIME_PATTERN, emitted["start"])
    assert MarketWindow.model_validate_json(window.model_dump_json()) == window


@pytest.mark.parametrize(
    "given",
    ["17:30Z", "17:30:00+08:00", "17:30:00.5", "24:00", "7:30", "", 63000,
     time(17, 30, tzinfo=UTC), time(17, 30, 0, 500)],
)  # fmt: skip
def test_what_the_pattern_refuses_is_refused(given: Any) -> None:
    with pytest.raises(ValidationError, match="local time of day"):
        MarketWindow.model_validate(_window(given))


@pytest.mark.parametrize("given", [0, 1, "false", "yes"])
def test_a_stall_is_active_only_by_a_json_boolean(given: Any) -> None:
    stall = {"id": "XZ-03-A001", "market_id": "XZ-03", "category": "services"}
    assert (
        Stall.model_validate_json(
            '{"id": "XZ-03-A001", "market_id": "XZ-03", "category": "services", "active": false}'
        ).active
        is False
    )
    with pytest.raises(ValidationError, match="valid boolean"):
        Stall.model_validate({**stall, "active": given})
