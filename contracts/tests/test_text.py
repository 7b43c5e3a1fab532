"""Plain text in contracts: hostile characters are refused, real names of Zhuhai pass."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.catalogue import Market, MarketWindow
from contracts.events import MarketResumed, MarketSuspended
from contracts.text import PlainText, PlainTextOrEmpty

pytestmark = pytest.mark.unit

PLAIN: TypeAdapter[str] = TypeAdapter(PlainText)
PLAIN_OR_EMPTY: TypeAdapter[str] = TypeAdapter(PlainTextOrEmpty)

HOSTILE = {
    "nul": "陈\x00小梅",
    "bell": "ding\x07",
    "terminal-escape": "\x1b[2J\x1b[31mhacked",
    "c1-csi": "x\x9b31m",
    "newline": "line one\nline two",
    "tab": "a\tb",
    "delete": "abc\x7f",
    "right-to-left-override": "exe.\u202etxt",
    "left-to-right-embedding": "\u202aabc",
    "pop-directional": "abc\u202c",
    "first-strong-isolate": "abc\u2068def\u2069",
    "zero-width-only": "\u200b\u200c\u200d",
    "word-joiner-and-bom": "\u2060\ufeff",
    "spaces-only": "   ",
    "ideographic-space-only": "\u3000\u3000",
    "hangul-filler-only": "\u3164",
    "empty": "",
    "lone-surrogate": "a\ud800b",
}

FINE = ["陈小梅", "Gongbei Night Market", "台风红色预警 Typhoon signal red", "Café № 7", "O'Brien"]


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_text_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        PLAIN.validate_python(text)


@pytest.mark.parametrize("text", FINE)
def test_real_names_pass_unchanged(text: str) -> None:
    assert PLAIN.validate_python(text) == text
    assert PLAIN_OR_EMPTY.validate_python(text) == text


def test_empty_is_allowed_only_where_a_field_may_be_blank() -> None:
    assert PLAIN_OR_EMPTY.validate_python("") == ""
    with pytest.raises(ValidationError):
        PLAIN_OR_EMPTY.validate_python("\u200b")
    with pytest.raises(ValidationError):
        PLAIN_OR_EMPTY.validate_python("a\x1bb")


def _market(**changes: Any) -> dict[str, Any]:
    window = {
        "id": "evening",
        "name_zh": "夜市",
        "name_en": "Evening",
        "days": [1],
        "start": "17:30",
        "end": "22:30",
    }
    return {
        "id": "XZ-03",
        "district": "xiangzhou",
        "name_zh": "前山便民市场",
        "name_en": "Qianshan Market",
        "location": {"lat": 22.2568, "lon": 113.5214},
        "zones": ["daily_goods"],
        "windows": [window],
        **changes,
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"name_zh": "前山\u202e场市"},
        {"name_en": "\x1b]0;owned\x07"},
        {"address_zh": "\u200b"},
        {"name_zh": "\u200d"},
    ],
    ids=["name-zh-rlo", "name-en-osc", "address-zero-width", "name-zh-zwj-only"],
)
def test_catalogue_text_fields_refuse_hostile_text(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Market.model_validate(_market(**changes))


def test_window_names_refuse_hostile_text() -> None:
    base = _market()["windows"][0]
    with pytest.raises(ValidationError):
        MarketWindow.model_validate({**base, "name_en": "late\x00"})
    with pytest.raises(ValidationError):
        MarketWindow.model_validate({**base, "name_zh": ""})


def test_market_without_an_address_is_still_valid() -> None:
    assert Market.model_validate(_market()).address_zh == ""


def test_suspension_ids_are_optional_for_older_windows_producers() -> None:
    suspended = {
        "market_id": "XZ-03",
        "district": "xiangzhou",
        "first_date": "2026-12-08",
        "last_date": "2026-12-09",
        "reason": "台风",
    }
    assert MarketSuspended.model_validate(suspended).suspension_id is None
    resumed = {"market_id": "XZ-03", "district": "xiangzhou"}
    assert MarketResumed.model_validate(resumed).suspension_id is None
    with_id = MarketResumed.model_validate({**resumed, "suspension_id": "sp_1a2b"})
    assert with_id.suspension_id == "sp_1a2b"
