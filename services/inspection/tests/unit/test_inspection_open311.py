"""The Open311 GeoReport v2 view, without I/O: cases and violation types mapped to the spec's
fields, rendered as JSON and XML that agree, errors as the spec's lists, and the arguments of
``GET requests`` read as the spec says (ids override, 90-day default and limit, w3 dates)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.catalogue import District
from contracts.events import CaseState
from inspection.domain.cases import Case, HistoryItem
from inspection.domain.violations import ViolationCatalogue
from inspection.entrypoints.open311 import (
    MAX_REQUESTS,
    QUERY_SPAN,
    Open311Format,
    RequestQuery,
    agency_of,
    dump,
    error_response,
    parse_query,
    render,
    request_of,
    service_of,
)
from stallkit.problems import ProblemError

pytestmark = pytest.mark.unit

CATALOGUE = ViolationCatalogue.load()
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # Friday 18:00 in Zhuhai
SHA = "ab" * 32
REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat", "long",
    "media_url",
]  # fmt: skip
SERVICE_FIELDS = [
    "service_code", "service_name", "description", "metadata", "type", "keywords", "group",
]  # fmt: skip


def stall_case(**changes: Any) -> Case:
    case = Case(
        case_id="cs_0000000000000001",
        district="xiangzhou",
        market_id="XZ-07",
        stall_id="XZ-07-A001",
        subject_id="sj_9f8e7d6c5b4a",
        vendor_id="vd_alice",
        violation="road_occupation",
        penalty_min_cny=50,
        penalty_max_cny=500,
        opened_at=T0,
        observed_at=T0 - timedelta(minutes=5),
        deadline=T0 + timedelta(hours=48),
        source_id="sc_1",
    )
    return replace(case, **changes)


def step(
    action: str, to: CaseState, hours: float, note: str = "", photos: tuple[str, ...] = ()
) -> HistoryItem:
    at = T0 + timedelta(hours=hours)
    return HistoryItem(action, None, to, "district-xz-1", "district", at, note, photos)


def closed_case() -> Case:
    history = (
        step("file", CaseState.FILED, 1),
        step("dispatch", CaseState.DISPATCHED, 2),
        step("handle", CaseState.HANDLED, 3, "摊主已整改", (SHA, "cd" * 32)),
        step("verify", CaseState.VERIFIED, 4, photos=("ef" * 32,)),
        step("close", CaseState.CLOSED, 5, "结案 closed after check"),
    )
    return stall_case(state=CaseState.CLOSED, history=history, violation="cooking_fumes",
                      penalty_min_cny=500, penalty_max_cny=5000)  # fmt: skip


def xml(
    items: list[dict[str, Any]], root: str = "service_requests", item: str = "request"
) -> bytes:
    return bytes(render(Open311Format.XML, items, root, item).body)


def xml_items(body: bytes) -> tuple[ET.Element, list[dict[str, str | None]]]:
    root = ET.fromstring(body)
    return root, [{child.tag: child.text for child in item} for item in root]


# -- services ---------------------------------------------------------------------------------


def test_every_violation_type_is_a_service_with_the_spec_fields() -> None:
    services = dump(service_of(v) for v in CATALOGUE)
    assert [s["service_code"] for s in services] == [v.type for v in CATALOGUE]
    for service, violation in zip(services, CATALOGUE, strict=True):
        assert list(service) == SERVICE_FIELDS
        assert service["service_name"] == f"{violation.name_zh} / {violation.name_en}"
        assert service["metadata"] is False
        assert service["type"] == "realtime"
        assert service["group"] == ("minor" if violation.minor else "serious")
        assert service["keywords"] == ("exempt" if violation.exempt else None)
        assert f"{violation.penalty_min_cny}–{violation.penalty_max_cny}" in service["description"]
        assert f"{violation.deadline_hours}" in service["description"]
    road = next(s for s in services if s["service_code"] == "road_occupation")
    fumes = next(s for s in services if s["service_code"] == "cooking_fumes")
    assert "warning" in road["description"]
    assert (road["group"], fumes["group"], fumes["keywords"]) == ("minor", "serious", None)


# -- requests ---------------------------------------------------------------------------------


def test_an_open_case_at_a_stall_maps_to_an_open_request_in_local_time() -> None:
    request = request_of(stall_case(), CATALOGUE, media_base="https://insp.example")
    data = request.model_dump(mode="json")
    assert list(data) == REQUEST_FIELDS
    assert data == {
        "service_request_id": "cs_0000000000000001",
        "status": "open",
        "status_notes": "已上报 reported",
        "service_name": "占道经营 / Road-occupying business",
        "service_code": "road_occupation",
        "description": "占道经营 / Road-occupying business，发现于 / observed at "
        "2026-11-20T17:55:00+08:00",
        "agency_responsible": "香洲区综合行政执法局 / Xiangzhou district enforcement office",
        "service_notice": "建议处罚 50–500 元 / suggested penalty CNY 50–500",
        "requested_datetime": "2026-11-20T18:00:00+08:00",
        "updated_datetime": "2026-11-20T18:00:00+08:00",
        "expected_datetime": "2026-11-22T18:00:00+08:00",
        "address": "XZ-07-A001, XZ-07, 香洲区 Xiangzhou district, 珠海市",
        "address_id": "XZ-07-A001",
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


def test_a_closed_case_says_closed_with_its_last_note_time_and_first_photo() -> None:
    data = request_of(closed_case(), CATALOGUE, media_base="https://insp.example").model_dump()
    assert data["status"] == "closed"
    assert data["status_notes"] == "已结案 closed: 结案 closed after check"
    assert data["updated_datetime"] == "2026-11-20T23:00:00+08:00"  # the close, 5 h later
    assert data["media_url"] == f"https://insp.example/v1/evidence/{SHA}"
    assert data["service_notice"] == "建议处罚 500–5000 元 / suggested penalty CNY 500–5000"
    assert data["service_name"] == "油烟污染 / Cooking fumes"


def test_every_state_but_closed_is_open_and_a_step_without_a_note_shows_the_state_only() -> None:
    for state in CaseState:
        case = stall_case(state=state, history=(step("x", state, 1),))
        data = request_of(case, CATALOGUE).model_dump()
        assert data["status"] == ("closed" if state is CaseState.CLOSED else "open")
        assert data["status_notes"].endswith(f" {state.value}")


def test_a_street_report_case_has_its_location_and_no_stall() -> None:
    case = stall_case(stall_id=None, violation="street_vending", lat=22.2712, lon=113.5771)
    data = request_of(case, CATALOGUE).model_dump()
    assert (data["lat"], data["long"]) == (22.2712, 113.5771)
    assert data["address_id"] is None
    assert data["address"] == "XZ-07 附近 near XZ-07, 香洲区 Xiangzhou district, 珠海市"


def test_a_type_the_catalogue_no_longer_has_still_maps_with_the_case_own_penalty() -> None:
    data = request_of(stall_case(violation="retired_type"), CATALOGUE).model_dump()
    assert (data["service_code"], data["service_name"]) == ("retired_type", "retired_type")
    assert "50–500" in data["service_notice"]


def test_neither_the_subject_nor_the_vendor_appears_in_either_format() -> None:
    items = dump([request_of(closed_case(), CATALOGUE), request_of(stall_case(), CATALOGUE)])
    for fmt in Open311Format:
        body = render(fmt, items, "service_requests", "request").body
        assert b"vd_alice" not in body
        assert b"sj_9f8e7d6c5b4a" not in body
        assert b"district-xz-1" not in body  # staff ids stay inside too


def test_every_district_has_its_office() -> None:
    for district in District:
        zh, _, en = agency_of(district.value).partition(" / ")
        assert zh.endswith("综合行政执法局")
        assert en.endswith("enforcement office")
    assert agency_of("doumen") == "斗门区综合行政执法局 / Doumen district enforcement office"
    assert "Zhuhai" in agency_of("")  # a street report no market's district claimed


# -- rendering --------------------------------------------------------------------------------


def test_xml_has_the_declaration_and_the_spec_elements_and_agrees_with_json() -> None:
    located = stall_case(lat=22.1, lon=113.2)
    items = dump([request_of(closed_case(), CATALOGUE), request_of(located, CATALOGUE)])
    as_xml = render(Open311Format.XML, items, "service_requests", "request")
    assert as_xml.headers["content-type"] == "text/xml; charset=utf-8"
    body = bytes(as_xml.body)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<service_requests>')
    root, parsed = xml_items(body)
    assert root.tag == "service_requests"
    assert [item.tag for item in root] == ["request", "request"]
    as_json = render(Open311Format.JSON, items, "service_requests", "request")
    assert as_json.headers["content-type"] == "application/json; charset=utf-8"
    decoded = json.loads(bytes(as_json.body))
    assert decoded == items
    for from_xml, from_json in zip(parsed, decoded, strict=True):
        assert list(from_xml) == REQUEST_FIELDS
        for name, value in from_json.items():
            text = from_xml[name]
            if value is None:
                assert text is None, name  # an empty element
            elif isinstance(value, float):
                assert float(str(text)) == value
            else:
                assert text == str(value), name


def test_services_render_booleans_as_the_spec_writes_them() -> None:
    root, services = xml_items(xml(dump(service_of(v) for v in CATALOGUE), "services", "service"))
    assert root.tag == "services"
    assert {s["metadata"] for s in services} == {"false"}
    assert {s["keywords"] for s in services} == {"exempt", None}


def test_a_definition_renders_as_one_object_with_empty_attributes() -> None:
    definition = {"service_code": "litter", "attributes": []}
    root = ET.fromstring(
        bytes(render(Open311Format.XML, definition, "service_definition", None).body)
    )
    assert root.tag == "service_definition"
    assert [c.tag for c in root] == ["service_code", "attributes"]
    assert root.findtext("service_code") == "litter"
    assert list(root.find("attributes") or []) == []
    body = render(Open311Format.JSON, definition, "service_definition", None).body
    assert json.loads(bytes(body)) == definition


def test_text_xml_cannot_hold_is_dropped_rather_than_breaking_the_document() -> None:
    note = step("file", CaseState.FILED, 1, "note\x00with\x1bcontrol")
    case = stall_case(state=CaseState.FILED, history=(note,))
    _, parsed = xml_items(xml(dump([request_of(case, CATALOGUE)])))
    assert parsed[0]["status_notes"] == "已立案 filed: notewithcontrol"


def test_errors_are_the_spec_lists_in_both_formats() -> None:
    answer = error_response(Open311Format.JSON, 404, ["找不到该服务请求"])
    assert answer.status_code == 404
    assert json.loads(bytes(answer.body)) == [{"code": 404, "description": "找不到该服务请求"}]
    in_xml = error_response(Open311Format.XML, 403, ["a", "b"], english=True)
    root = ET.fromstring(bytes(in_xml.body))
    assert root.tag == "errors"
    assert [(e.findtext("code"), e.findtext("description")) for e in root] == [
        ("403", "a"), ("403", "b"),
    ]  # fmt: skip
    assert in_xml.headers["content-language"] == "en"
    unauthorized = error_response(Open311Format.JSON, 401, ["no token"])
    assert unauthorized.headers["www-authenticate"] == "Bearer"


# -- the arguments of GET requests ------------------------------------------------------------


def query(**args: str | None) -> RequestQuery:
    return parse_query(CATALOGUE, T0, **args)


def test_without_dates_the_query_is_the_last_90_days() -> None:
    q = query()
    assert (q.start, q.end, q.codes, q.statuses, q.ids) == (T0 - QUERY_SPAN, None, None, None, ())
    assert MAX_REQUESTS == 1000


def test_one_date_makes_a_90_day_range_from_or_to_it() -> None:
    start = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)
    assert query(start_date="2026-09-01T00:00:00Z").end == start + QUERY_SPAN
    q = query(end_date="2026-09-01T08:00:00+08:00")
    assert q.end == start + timedelta(microseconds=1)  # the end is included
    assert q.end is not None
    assert q.start == q.end - QUERY_SPAN


def test_dates_need_a_time_zone_and_an_unencoded_plus_is_still_read() -> None:
    q = query(start_date="2026-11-01T00:00:00 08:00", end_date="2026-11-20T00:00:00Z")
    assert q.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    for bad in ("2026-11-01T00:00:00", "yesterday", "2026-13-01T00:00:00Z"):
        with pytest.raises(ProblemError) as refused:
            query(start_date=bad)
        assert (refused.value.code, refused.value.status) == ("open311_bad_datetime", 400)


def test_a_date_alone_is_the_whole_local_day() -> None:
    q = query(start_date="2026-11-01", end_date="2026-11-20")
    assert q.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 00:00 in Zhuhai
    assert q.end == datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # the next local midnight


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-20T00:00:00Z", "2026-11-19T00:00:00Z"),  # ends before it starts
        ("2026-01-01T00:00:00Z", "2026-11-20T00:00:00Z"),  # over 90 days
    ],
)
def test_a_range_backwards_or_over_90_days_is_refused(start: str, end: str) -> None:
    with pytest.raises(ProblemError) as refused:
        query(start_date=start, end_date=end)
    assert (refused.value.code, refused.value.status) == ("open311_bad_range", 400)


def test_ids_override_every_other_argument() -> None:
    q = query(service_request_id=" cs_1 ,cs_2,,cs_1", status="nonsense", start_date="bad")
    assert q == RequestQuery(ids=("cs_1", "cs_2"))
    with pytest.raises(ProblemError) as refused:
        query(service_request_id=",".join(f"cs_{n}" for n in range(1001)))
    assert refused.value.code == "open311_too_many_ids"


def test_codes_and_statuses_are_comma_lists_checked_against_the_catalogue() -> None:
    q = query(service_code="litter,noise", status="OPEN")
    assert (q.codes, q.statuses) == (frozenset({"litter", "noise"}), frozenset({"open"}))
    assert query(service_code="", status="", start_date="").codes is None  # empty = absent
    with pytest.raises(ProblemError) as unknown:
        query(service_code="litter,potholes")
    assert (unknown.value.code, unknown.value.detail) == ("open311_unknown_service", "potholes")
    with pytest.raises(ProblemError) as bad:
        query(status="open,pending")
    assert bad.value.code == "open311_bad_status"


def test_the_filters_pick_cases_by_code_and_open_or_closed() -> None:
    road, fumes = stall_case(), closed_case()
    assert RequestQuery().wants(road)
    assert RequestQuery().wants(fumes)
    only_open = RequestQuery(statuses=frozenset({"open"}))
    assert (only_open.wants(road), only_open.wants(fumes)) == (True, False)
    only_fumes = RequestQuery(codes=frozenset({"cooking_fumes"}))
    assert (only_fumes.wants(road), only_fumes.wants(fumes)) == (False, True)
