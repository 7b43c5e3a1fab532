"""The Open311 GeoReport v2 view served over HTTP on a real redis-server, with cases written as
the enforcement store writes them: every field of the spec with its type, JSON and XML that
agree, the filters, the 90-day default, errors as the spec's lists, and district isolation.

The service clock is Friday 2026-11-20 18:00 local (stalltest.inspection's scene time).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from contracts.events import CaseState
from inspection.adapters.enforcement_store import EnforcementStore, Tx, case_to_json
from inspection.adapters.expectation_store import RedisExpectationStore
from inspection.adapters.keys import Keys
from inspection.config import InspectionSettings
from inspection.domain.cases import Case, HistoryItem
from inspection.domain.violations import ViolationCatalogue
from inspection.entrypoints.open311 import open311_router
from inspection.service_layer.enforcement import Enforcement
from stallkit.auth import Role
from stallkit.service import ServiceParts, build_service
from stalltest.inspection import (
    ADMIN,
    NOW,
    OFFICE,
    OTHER_OFFICE,
    PATROL,
    Serve,
    scene_settings,
    token,
)

pytestmark = pytest.mark.integration

SHA = "5e" * 32
V2 = "/open311/v2"
W3 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$"
#: The spec's request fields: the type of each, and whether it may be empty.
REQUEST_FIELDS: dict[str, tuple[type, bool]] = {
    "service_request_id": (str, False),
    "status": (str, False),
    "status_notes": (str, True),
    "service_name": (str, False),
    "service_code": (str, False),
    "description": (str, False),
    "agency_responsible": (str, True),
    "service_notice": (str, True),
    "requested_datetime": (str, False),
    "updated_datetime": (str, False),
    "expected_datetime": (str, True),
    "address": (str, True),
    "address_id": (str, True),
    "zipcode": (str, True),
    "lat": (float, True),
    "long": (float, True),
    "media_url": (str, True),
}
SERVICE_FIELDS: dict[str, type] = {
    "service_code": str,
    "service_name": str,
    "description": str,
    "metadata": bool,
    "type": str,
    "keywords": str,
    "group": str,
}


def case(n: int, district: str, hours_ago: float, **changes: Any) -> Case:
    opened = NOW - timedelta(hours=hours_ago)
    base = Case(
        case_id=f"cs_{n:016x}",
        district=district,
        market_id="XZ-07" if district == "xiangzhou" else "DM-02",
        stall_id=("XZ-07" if district == "xiangzhou" else "DM-02") + "-A001",
        subject_id=f"sj_subject_{n}",
        vendor_id=f"vd_vendor_{n}",
        violation="road_occupation",
        penalty_min_cny=50,
        penalty_max_cny=500,
        opened_at=opened,
        observed_at=opened - timedelta(minutes=3),
        deadline=opened + timedelta(hours=48),
        source_id=f"sc_{n}",
    )
    return replace(base, **changes)


def history(opened_hours_ago: float) -> tuple[HistoryItem, ...]:
    at = NOW - timedelta(hours=opened_hours_ago)
    steps = [
        ("file", CaseState.REPORTED, CaseState.FILED, "", ()),
        ("dispatch", CaseState.FILED, CaseState.DISPATCHED, "", ()),
        ("handle", CaseState.DISPATCHED, CaseState.HANDLED, "已清理油烟", (SHA,)),
        ("verify", CaseState.HANDLED, CaseState.VERIFIED, "", ()),
        ("close", CaseState.VERIFIED, CaseState.CLOSED, "整改到位 fixed", ()),
    ]
    return tuple(
        HistoryItem(a, f, t, "district-xz-1", "district", at + timedelta(hours=i + 1), note, ph)
        for i, (a, f, t, note, ph) in enumerate(steps)
    )


OPEN_AT_STALL = case(1, "xiangzhou", 2)
CLOSED = case(2, "xiangzhou", 72, violation="cooking_fumes", penalty_min_cny=500,
              penalty_max_cny=5000, state=CaseState.CLOSED, history=history(72))  # fmt: skip
STREET = case(3, "xiangzhou", 24, stall_id=None, violation="street_vending", lat=22.2712,
              lon=113.5771, state=CaseState.DISPATCHED)  # fmt: skip
OLD = case(4, "xiangzhou", 100 * 24)  # outside the default 90 days
DOUMEN = case(5, "doumen", 1)
UNKNOWN = "cs_00000000000000ff"


async def write_cases(redis: Redis, keys: Keys, cases: Sequence[Case]) -> None:
    """Store cases as the enforcement store's decisions do."""
    store = EnforcementStore(redis, keys, source="/tests/open311")

    async def decide(tx: Tx) -> None:
        for c in cases:
            tx.set(keys.case(c.case_id), case_to_json(c))
            tx.zadd(keys.district_cases(c.district), c.case_id, c.opened_at.timestamp() * 1000)

    await store.run(decide)


@pytest.fixture
async def client(
    inspection_settings: InspectionSettings, tmp_path: Path, serve: Serve, redis_client: Redis
) -> httpx.AsyncClient:
    settings = await scene_settings(inspection_settings, tmp_path / "evidence")
    parts = ServiceParts.from_settings(settings)
    keys = Keys(settings.redis_prefix)
    catalogue = ViolationCatalogue.load(settings.violations_file)
    enforcement = Enforcement(
        EnforcementStore(parts.redis, keys, source="/services/inspection"),
        RedisExpectationStore(parts.redis, settings, parts.clock, settings.expected_retention_days),
        catalogue,
        parts.clock,
        public_key=settings.stall_code_key(),
        subject_salt=settings.subject_salt,
        lookback=timedelta(days=settings.repeat_lookback_days),
        offline_max_age=timedelta(hours=settings.offline_scan_max_age_hours),
    )
    app = build_service(
        parts,
        title="inspection (Open311 view)",
        description="test",
        routers=[open311_router(enforcement, catalogue)],
        configure_logs=False,
    )
    await write_cases(redis_client, keys, [OPEN_AT_STALL, CLOSED, STREET, OLD, DOUMEN])
    return await serve(app)


def xml_list(response: httpx.Response, root: str, item: str) -> list[dict[str, str | None]]:
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    element = ET.fromstring(response.content)
    assert element.tag == root
    assert all(child.tag == item for child in element)
    return [{field.tag: field.text for field in child} for child in element]


def agree(from_json: list[dict[str, Any]], from_xml: list[dict[str, str | None]]) -> None:
    """The XML says what the JSON says, field by field, in the same order."""
    assert len(from_json) == len(from_xml)
    for j, x in zip(from_json, from_xml, strict=True):
        assert list(j) == list(x)
        for name, value in j.items():
            if value is None:
                assert x[name] is None, name
            elif isinstance(value, bool):
                assert x[name] == str(value).lower(), name
            elif isinstance(value, float):
                assert float(str(x[name])) == value, name
            else:
                assert x[name] == str(value), name


async def both(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], root: str, item: str,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """GET ``path``.json and ``path``.xml; check they agree; the JSON."""
    as_json = await client.get(f"{V2}/{path}.json", params=params, headers=headers)
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"] == "application/json; charset=utf-8"
    as_xml = await client.get(f"{V2}/{path}.xml", params=params, headers=headers)
    assert as_xml.status_code == 200, as_xml.text
    found: list[dict[str, Any]] = as_json.json()
    agree(found, xml_list(as_xml, root, item))
    return found


async def ids(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    found = await both(client, "requests", headers, "service_requests", "request", params)
    return [r["service_request_id"] for r in found]


def errors(response: httpx.Response, status: int) -> list[str]:
    """The descriptions of an Open311 error list (JSON or XML) answered with ``status``."""
    assert response.status_code == status, response.text
    if response.headers["content-type"].startswith("text/xml"):
        root = ET.fromstring(response.content)
        assert root.tag == "errors"
        assert {e.findtext("code") for e in root} == {str(status)}
        return [str(e.findtext("description")) for e in root]
    body = response.json()
    assert isinstance(body, list)
    assert body
    assert {e["code"] for e in body} == {status}
    return [e["description"] for e in body]


async def test_services_are_the_catalogue_with_every_spec_field_in_both_formats(
    client: httpx.AsyncClient,
) -> None:
    services = await both(client, "services", OFFICE, "services", "service")
    assert len(services) == len(list(ViolationCatalogue.load()))
    for service in services:
        assert list(service) == list(SERVICE_FIELDS)
        for name, kind in SERVICE_FIELDS.items():
            assert service[name] is None or isinstance(service[name], kind), name
        assert (service["metadata"], service["type"]) == (False, "realtime")
    litter = next(s for s in services if s["service_code"] == "litter")
    fumes = next(s for s in services if s["service_code"] == "cooking_fumes")
    assert (litter["service_name"], litter["group"], litter["keywords"]) == (
        "乱扔垃圾 / Litter", "minor", "exempt",
    )  # fmt: skip
    assert (fumes["group"], fumes["keywords"]) == ("serious", None)


async def test_a_service_definition_has_no_attributes_and_an_unknown_code_is_404(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get(f"{V2}/services/litter.json", headers=ADMIN)
    assert (r.status_code, r.json()) == (200, {"service_code": "litter", "attributes": []})
    r = await client.get(f"{V2}/services/litter.xml", headers=ADMIN)
    root = ET.fromstring(r.content)
    assert (root.tag, root.findtext("service_code"), len(root.find("attributes") or [])) == (
        "service_definition", "litter", 0,
    )  # fmt: skip
    for fmt in ("json", "xml"):
        missing = await client.get(f"{V2}/services/potholes.{fmt}", headers=ADMIN)
        assert errors(missing, 404) == ["没有该服务类型: potholes"]


async def test_requests_carry_every_spec_field_with_its_type_and_no_personal_ids(
    client: httpx.AsyncClient,
) -> None:
    found = await both(client, "requests", OFFICE, "service_requests", "request")
    # the district's cases of the last 90 days, newest first
    assert [r["service_request_id"] for r in found] == [
        OPEN_AT_STALL.case_id, STREET.case_id, CLOSED.case_id,
    ]  # fmt: skip
    for request in found:
        assert list(request) == list(REQUEST_FIELDS)
        for name, (kind, may_be_empty) in REQUEST_FIELDS.items():
            value = request[name]
            assert isinstance(value, kind) or (may_be_empty and value is None), name
        for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
            assert request[name] is not None
            assert re.match(W3, request[name]), request[name]
        assert request["agency_responsible"] == (
            "香洲区综合行政执法局 / Xiangzhou district enforcement office"
        )
    by_id = {r["service_request_id"]: r for r in found}
    stall, street, closed = (
        by_id[OPEN_AT_STALL.case_id],
        by_id[STREET.case_id],
        by_id[CLOSED.case_id],
    )
    assert (stall["status"], stall["requested_datetime"]) == ("open", "2026-11-20T16:00:00+08:00")
    assert (stall["address_id"], stall["lat"], stall["long"]) == ("XZ-07-A001", None, None)
    assert stall["expected_datetime"] == "2026-11-22T16:00:00+08:00"
    assert (street["lat"], street["long"], street["address_id"]) == (22.2712, 113.5771, None)
    assert street["status_notes"] == "已派遣 dispatched"
    assert closed["status"] == "closed"
    assert closed["status_notes"] == "已结案 closed: 整改到位 fixed"
    assert closed["updated_datetime"] == "2026-11-17T23:00:00+08:00"  # the close, 5 h after
    assert closed["media_url"] == f"{client.base_url}/v1/evidence/{SHA}"
    for fmt in ("json", "xml"):
        body = (await client.get(f"{V2}/requests.{fmt}", headers=ADMIN)).text
        assert "vd_vendor" not in body
        assert "sj_subject" not in body


async def test_the_filters_of_get_requests(client: httpx.AsyncClient) -> None:
    assert await ids(client, OFFICE, status="open") == [OPEN_AT_STALL.case_id, STREET.case_id]
    assert await ids(client, OFFICE, status="closed") == [CLOSED.case_id]
    assert await ids(client, OFFICE, status="open,closed", service_code="cooking_fumes,litter") == [
        CLOSED.case_id
    ]
    # a range of their own: only the old case was opened 95 to 105 days ago
    old = {"start_date": (NOW - timedelta(days=105)).isoformat(),
           "end_date": (NOW - timedelta(days=95)).isoformat()}  # fmt: skip
    assert await ids(client, OFFICE, **old) == [OLD.case_id]
    # the end is inclusive: a case opened exactly then is in
    at = OPEN_AT_STALL.opened_at.isoformat()
    assert await ids(client, OFFICE, start_date=at, end_date=at) == [OPEN_AT_STALL.case_id]
    # ids override every other argument, keep their order, skip what the caller may not see
    listed = ",".join([OLD.case_id, DOUMEN.case_id, UNKNOWN, CLOSED.case_id, "nonsense"])
    assert await ids(client, OFFICE, service_request_id=listed, status="open") == [
        OLD.case_id, CLOSED.case_id,
    ]  # fmt: skip
    assert await ids(client, ADMIN, service_request_id=listed) == [
        OLD.case_id, DOUMEN.case_id, CLOSED.case_id,
    ]  # fmt: skip


async def test_bad_arguments_are_400_error_lists_in_the_format_asked_for(
    client: httpx.AsyncClient,
) -> None:
    too_long = {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-11-20T00:00:00+08:00"}
    for fmt in ("json", "xml"):
        r = await client.get(f"{V2}/requests.{fmt}", params=too_long, headers=OFFICE)
        assert errors(r, 400) == ["end_date 须晚于 start_date，且跨度不超过 90 天"]
    r = await client.get(
        f"{V2}/requests.xml", params={"start_date": "2026-11-01 18:00"}, headers=OFFICE
    )
    assert errors(r, 400) == [
        "start_date 与 end_date 须为带时区的 ISO 8601 时间，如 2026-11-20T18:00:00+08:00: "
        "2026-11-01 18:00"
    ]
    r = await client.get(
        f"{V2}/requests.json",
        params={"status": "pending"},
        headers={**OFFICE, "Accept-Language": "en"},
    )
    assert errors(r, 400) == ["status must be open or closed: pending"]
    r = await client.get(f"{V2}/requests.json", params={"service_code": "potholes"}, headers=OFFICE)
    assert errors(r, 400) == ["没有该服务类型: potholes"]
    r = await client.get(f"{V2}/services.csv", headers=OFFICE)
    assert errors(r, 400)[0].startswith("format:")


async def test_one_request_by_id_and_district_isolation(client: httpx.AsyncClient) -> None:
    for fmt in ("json", "xml"):
        path = f"{V2}/requests/{STREET.case_id}.{fmt}"
        r = await client.get(path, headers=OFFICE)
        assert r.status_code == 200
        if fmt == "json":
            assert [x["service_request_id"] for x in r.json()] == [STREET.case_id]
        else:
            listed = xml_list(r, "service_requests", "request")
            assert [x["service_request_id"] for x in listed] == [STREET.case_id]
        # another district's case: 403, an unknown one: 404, both as Open311 error lists
        other = await client.get(f"{V2}/requests/{DOUMEN.case_id}.{fmt}", headers=OFFICE)
        assert errors(other, 403) == ["只能查看本辖区的服务请求"]
        unknown = await client.get(f"{V2}/requests/{UNKNOWN}.{fmt}", headers=OFFICE)
        assert errors(unknown, 404) == [f"找不到该服务请求: {UNKNOWN}"]
        garbage = await client.get(f"{V2}/requests/not-a-case.{fmt}", headers=OFFICE)
        assert errors(garbage, 404)
    # Doumen's office sees its own case only; the administrator sees every district's
    assert await ids(client, OTHER_OFFICE) == [DOUMEN.case_id]
    assert await ids(client, ADMIN) == [
        DOUMEN.case_id, OPEN_AT_STALL.case_id, STREET.case_id, CLOSED.case_id,
    ]  # fmt: skip
    r = await client.get(f"{V2}/requests/{DOUMEN.case_id}.json", headers=ADMIN)
    assert r.json()[0]["agency_responsible"] == (
        "斗门区综合行政执法局 / Doumen district enforcement office"
    )


async def test_only_district_offices_and_administrators_may_read(
    client: httpx.AsyncClient,
) -> None:
    for path in ("services.json", "requests.xml", f"requests/{OPEN_AT_STALL.case_id}.json"):
        nobody = await client.get(f"{V2}/{path}")
        assert errors(nobody, 401)
        assert nobody.headers["www-authenticate"] == "Bearer"
        for refused in (PATROL, token(Role.VENDOR, "vd_vendor_1")):
            assert errors(await client.get(f"{V2}/{path}", headers=refused), 403)
