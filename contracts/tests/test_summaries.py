"""Every event reads as a line a district office understands, in Chinese and in English."""

from __future__ import annotations

import re

import pytest

from contracts.envelope import Event
from contracts.events import ALL_EVENTS, BookingCreated
from contracts.examples import example_of
from contracts.summaries import short_type, summarize

pytestmark = pytest.mark.unit
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("event_cls", ALL_EVENTS, ids=lambda c: c.event_name)
def test_each_event_has_its_own_zh_and_en_line(event_cls: type[Event]) -> None:
    zh, en = summarize(example_of(event_cls))
    assert CJK.search(zh), zh  # not the generic "<type> <subject>" fallback
    assert en.strip(), en
    assert "\n" not in zh + en


def test_a_line_names_what_it_is_about() -> None:
    event = example_of(BookingCreated)
    zh, en = summarize(event)
    assert event.stall_id in zh
    assert event.stall_id in en
    assert event.vendor_id in en


def test_the_short_type_drops_the_prefix_and_version() -> None:
    assert short_type("cn.gov.zhuhai.markets.booking.created.v1") == "booking.created"
    assert short_type("something.else") == "something.else"
