"""The case loop through the API (real broker and Redis): who may take each step, the handler
rule, district isolation everywhere, the vendor's own view, the events, the record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker

from contracts.envelope import RawEnvelope
from contracts.topics import INSPECTION
from inspection.config import InspectionSettings
from inspection.domain.record import canonical
from stallkit.auth import Role
from stalltest.inspection import (
    ADMIN,
    CHECKER,
    MARKET,
    OFFICE,
    OTHER_OFFICE,
    OTHER_PATROL,
    PATROL,
    Eventually,
    Serve,
    code,
    scene_settings,
    start_inspection,
    tiny_png,
    token,
)

pytestmark = pytest.mark.integration

Reader = Callable[[str], Awaitable[Any]]
ALICE = token(Role.VENDOR, "vd_alice")
_keys = iter(range(1, 1_000_000))


@pytest.fixture
async def settings(inspection_settings: InspectionSettings, tmp_path: Path) -> InspectionSettings:
    return await scene_settings(inspection_settings, tmp_path / "evidence")


@pytest.fixture
async def client(
    settings: InspectionSettings, serve: Serve, publisher: KafkaBroker, eventually: Eventually
) -> httpx.AsyncClient:
    return await start_inspection(settings, serve, publisher, eventually)


async def open_case(client: httpx.AsyncClient, violation: str = "cooking_fumes") -> str:
    r = await client.post(
        "/v1/scans",
        json={"code": code(f"{MARKET}-A001"), "occupied": True, "vendor_id": "vd_alice",
              "violations": [violation]},
        headers={**PATROL, "Idempotency-Key": f"case-{next(_keys)}"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["cases"][0]["case_id"])


async def step(
    client: httpx.AsyncClient, case_id: str, action: str, headers: dict[str, str], note: str = ""
) -> httpx.Response:
    return await client.post(
        f"/v1/cases/{case_id}/transitions", json={"action": action, "note": note}, headers=headers
    )


async def test_a_case_goes_round_the_loop_with_each_step_allowed_or_refused_by_role(
    client: httpx.AsyncClient, settings: InspectionSettings, topic_reader: Reader
) -> None:
    reader = await topic_reader(settings.topic(INSPECTION.name))
    case_id = await open_case(client)

    def refused(r: httpx.Response, status: int, problem: str) -> None:
        assert (r.status_code, r.json()["code"]) == (status, problem), r.text
        assert r.headers["content-type"].startswith("application/problem+json")

    refused(await step(client, case_id, "file", PATROL), 403, "forbidden")  # patrols report only
    refused(await step(client, case_id, "file", ALICE), 403, "forbidden")
    refused(await step(client, case_id, "file", OTHER_OFFICE), 403, "other_district")
    refused(await step(client, case_id, "handle", OFFICE), 409, "illegal_transition")
    assert (await step(client, case_id, "file", OFFICE)).json()["state"] == "filed"
    refused(await step(client, case_id, "file", OFFICE), 409, "illegal_transition")
    assert (await step(client, case_id, "dispatch", OFFICE)).json()["state"] == "dispatched"
    handled = await step(client, case_id, "handle", OFFICE, note="摊主已整改 fumes hood fitted")
    assert handled.json()["state"] == "handled"
    assert handled.json()["handled_by"] == "district-xz-1"
    refused(await step(client, case_id, "verify", OFFICE), 403, "handler_cannot_verify")
    refused(await step(client, case_id, "send_back", OFFICE), 403, "handler_cannot_verify")
    back = await step(client, case_id, "send_back", CHECKER, note="油烟仍超标")
    assert back.json()["state"] == "dispatched"
    assert (await step(client, case_id, "handle", OFFICE)).json()["state"] == "handled"
    assert (await step(client, case_id, "verify", CHECKER)).json()["state"] == "verified"
    refused(await step(client, case_id, "close", OTHER_OFFICE), 403, "other_district")
    closed = await step(client, case_id, "close", ADMIN)
    assert closed.json()["state"] == "closed"
    assert closed.json()["on_time"] is True
    assert [h["action"] for h in closed.json()["history"]] == [
        "file", "dispatch", "handle", "send_back", "handle", "verify", "close",
    ]  # fmt: skip

    # The vendor evaluates the closed case once; another vendor cannot see it.
    bob = token(Role.VENDOR, "vd_bob")
    refused(await client.post(f"/v1/cases/{case_id}/evaluation", json={"score": 1}, headers=bob),
            404, "case_not_found")  # fmt: skip
    r = await client.post(f"/v1/cases/{case_id}/evaluation", json={"score": 5}, headers=ALICE)
    assert r.status_code == 200
    assert r.json()["evaluation"] == 5
    refused(await client.post(f"/v1/cases/{case_id}/evaluation", json={"score": 4}, headers=OFFICE),
            409, "already_evaluated")  # fmt: skip

    types = [
        "scan.recorded", "case.opened", "case.filed", "case.dispatched", "case.handled",
        "case.sent_back", "case.handled", "case.verified", "case.closed", "case.evaluated",
    ]  # fmt: skip

    def seen(records: list[Any]) -> list[str]:
        return [
            RawEnvelope.from_bytes(r.value).type.split(".markets.inspection.")[1][: -len(".v1")]
            for r in records
        ]

    records = await reader.collect_until(lambda rs: len(rs) >= len(types))
    assert seen(records) == types  # one market, one partition: in order
    assert {r.key for r in records} == {MARKET.encode()}


async def test_staff_of_another_district_can_neither_read_nor_act(
    client: httpx.AsyncClient,
) -> None:
    case_id = await open_case(client)
    for method, path, body in [
        ("GET", f"/v1/cases/{case_id}", None),
        ("GET", "/v1/cases?district=xiangzhou", None),
        ("POST", f"/v1/cases/{case_id}/transitions", {"action": "file"}),
        ("GET", "/v1/record/verify?district=xiangzhou", None),
        ("GET", "/v1/record/export?district=xiangzhou", None),
    ]:
        for headers in (OTHER_OFFICE, OTHER_PATROL):
            r = await client.request(method, path, json=body, headers=headers)
            assert r.status_code == 403, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    # Their own listing does not show it either.
    r = await client.get("/v1/cases", headers=OTHER_OFFICE)
    assert r.status_code == 200
    assert r.json()["items"] == []
    r = await client.get("/v1/cases", headers=OFFICE)
    assert [c["case_id"] for c in r.json()["items"]] == [case_id]


async def test_cases_are_listed_by_state_type_and_overdue_a_page_at_a_time(
    client: httpx.AsyncClient,
) -> None:
    fumes = [await open_case(client) for _ in range(3)]
    transfer = await open_case(client, "food_safety")
    await step(client, fumes[0], "file", OFFICE)

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/v1/cases", params=params, headers=OFFICE)
        assert r.status_code == 200, r.text
        return [c["case_id"] for c in r.json()["items"]]

    assert set(await ids()) == {*fumes, transfer}
    assert await ids(state="filed") == [fumes[0]]
    assert await ids(type="food_safety") == [transfer]
    assert set(await ids(overdue="false")) == {*fumes, transfer}
    assert await ids(overdue="true") == []
    assert await ids(**{"from": "2026-11-21"}) == []
    assert len(await ids(**{"from": "2026-11-20", "to": "2026-11-20"})) == 4
    page = (await client.get("/v1/cases", params={"limit": 3}, headers=OFFICE)).json()
    assert (page["total"], len(page["items"]), page["next_offset"]) == (4, 3, 3)
    rest = (await client.get("/v1/cases", params={"limit": 3, "offset": 3}, headers=OFFICE)).json()
    assert rest["next_offset"] is None
    assert {c["case_id"] for c in page["items"] + rest["items"]} == {*fumes, transfer}


async def test_a_vendor_sees_its_own_warnings_and_cases_only(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/scans",
        json={"code": code(f"{MARKET}-A001"), "occupied": True, "vendor_id": "vd_alice",
              "violations": ["litter"]},
        headers={**PATROL, "Idempotency-Key": "w-1"},
    )  # fmt: skip
    assert r.json()["warnings"]
    case_id = await open_case(client)
    r = await client.get("/v1/me/warnings", headers=ALICE)
    assert r.status_code == 200, r.text
    mine = r.json()
    assert [(i["kind"], i["violation"]) for i in mine] in (
        [("case", "cooking_fumes"), ("warning", "litter")],
        [("warning", "litter"), ("case", "cooking_fumes")],
    )
    assert any(i.get("case_id") == case_id for i in mine)
    assert (await client.get("/v1/me/warnings", headers=token(Role.VENDOR, "vd_bob"))).json() == []
    assert (await client.get("/v1/me/warnings", headers=PATROL)).status_code == 403


async def test_tampering_with_the_stored_record_is_found_at_the_entry(
    client: httpx.AsyncClient, redis_client: Any, settings: InspectionSettings
) -> None:
    for _ in range(2):
        await open_case(client)  # each: a scan entry and a case entry
    verify = "/v1/record/verify?district=xiangzhou"
    r = await client.get(verify, headers=OFFICE)
    assert r.json() | {"head_hash": None} == {
        "district": "xiangzhou", "valid": True, "entries": 4, "broken_at": None, "reason": None,
        "head_hash": None,
    }  # fmt: skip
    export = (await client.get("/v1/record/export", headers=OFFICE)).json()
    assert [e["seq"] for e in export["entries"]] == [1, 2, 3, 4]
    assert export["head"]["hash"] == export["entries"][-1]["hash"] == r.json()["head_hash"]
    for entry in export["entries"]:  # an outside auditor can recompute every hash
        assert hashlib.sha256(canonical(entry)).hexdigest() == entry["hash"]

    key = f"{settings.redis_prefix}insp:{{insp}}:record:xiangzhou"
    original = await redis_client.lrange(key, 0, -1)

    async def broken() -> tuple[int | None, str | None]:
        body = (await client.get(verify, headers=ADMIN)).json()
        assert body["valid"] is False
        return body["broken_at"], body["reason"]

    altered = json.loads(original[2])
    altered["data"]["violation"] = "litter"
    await redis_client.lset(key, 2, json.dumps(altered))
    assert await broken() == (3, "altered")

    await redis_client.delete(key)
    await redis_client.rpush(key, original[0], original[2], original[3])  # entry 2 removed
    assert (await broken())[0] == 2

    await redis_client.delete(key)
    await redis_client.rpush(key, original[0], original[2], original[1], original[3])
    assert (await broken())[0] == 2

    await redis_client.delete(key)
    await redis_client.rpush(key, *original[:3])  # the last one removed
    assert await broken() == (4, "entries_missing")

    await redis_client.delete(key)
    await redis_client.rpush(key, *original)
    assert (await client.get(verify, headers=OFFICE)).json()["valid"] is True


async def test_photos_are_evidence_of_a_scan_and_of_a_case_step_in_their_district(
    client: httpx.AsyncClient,
) -> None:
    photo = tiny_png(4, 3)
    up = await client.post(
        "/v1/evidence", content=photo, headers={**PATROL, "Content-Type": "image/png"}
    )
    assert up.status_code == 201, up.text
    sha = up.json()["sha256"]
    assert sha == hashlib.sha256(photo).hexdigest()
    r = await client.post(
        "/v1/scans",
        json={"code": code(f"{MARKET}-A001"), "occupied": True, "vendor_id": "vd_alice",
              "violations": ["cooking_fumes"], "photos": [sha]},
        headers={**PATROL, "Idempotency-Key": "photo-1"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["photos"] == [sha]
    case_id = r.json()["cases"][0]["case_id"]
    export = (await client.get("/v1/record/export", headers=OFFICE)).json()
    assert export["entries"][0]["data"]["photos"] == [sha]  # the record holds the hash

    # Another district's photo, or an unknown one, cannot be attached.
    theirs = await client.post(
        "/v1/evidence",
        content=tiny_png(5, 5),
        headers={**OTHER_PATROL, "Content-Type": "image/png"},
    )
    for other, status in ((theirs.json()["sha256"], 403), ("0" * 64, 404)):
        r = await client.post(
            "/v1/scans",
            json={"code": code(f"{MARKET}-A001"), "photos": [other], "occupied": False},
            headers={**PATROL, "Idempotency-Key": f"photo-{status}"},
        )
        assert r.status_code == status, r.text
    await step(client, case_id, "file", OFFICE)
    await step(client, case_id, "dispatch", OFFICE)
    r = await client.post(
        f"/v1/cases/{case_id}/transitions",
        json={"action": "handle", "note": "拆除违规灶具", "photos": [sha]},
        headers=OFFICE,
    )
    assert r.status_code == 200, r.text
    assert r.json()["history"][-1]["photos"] == [sha]
    got = await client.get(f"/v1/evidence/{sha}", headers=OFFICE)
    assert got.content == photo
    assert (await client.get(f"/v1/evidence/{sha}", headers=OTHER_OFFICE)).status_code == 403
