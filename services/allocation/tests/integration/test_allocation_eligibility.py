"""Verified eligibility: a vendor's priority group, permits and health certificate count only
once district staff or an administrator verified them, and only until the verification expires."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from contracts.topics import BOOKINGS
from stallkit.auth import Role
from stalltest.allocation import (
    MONDAY,
    TUESDAY,
    RegisteredVendor,
    RunningAllocation,
    local,
    set_now,
)
from stalltest.tokens import dev_token

pytestmark = pytest.mark.integration

WEDNESDAY = MONDAY + timedelta(days=2)
NEXT_MONDAY = MONDAY + timedelta(days=7)  # D-7 on MONDAY: priority groups only
#: Long enough to outlive every clock move of a test.
TTL = 30 * 86400


def staff(svc: RunningAllocation, role: Role = Role.ADMIN, district: str | None = None) -> Any:
    """A client with a staff token minted on the service clock."""
    now = svc.clock.now()
    token = dev_token(role, f"{role.value}-1", now=now, ttl_seconds=TTL, district=district)
    return svc.client(token)


def vendor_client(svc: RunningAllocation, vendor_id: str) -> httpx.AsyncClient:
    """The vendor's client, with a token that outlives clock moves."""
    return svc.client(svc.token(vendor_id, ttl=TTL))


async def book(svc: RunningAllocation, vendor_id: str, stall: str, day: date) -> httpx.Response:
    """POST a booking with a fresh Idempotency-Key."""
    async with vendor_client(svc, vendor_id) as c:
        return await c.post(
            "/v1/bookings",
            json={"stall_id": stall, "date": day.isoformat(), "window_id": "evening"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )


def code_of(response: httpx.Response) -> str | int:
    """201, or the problem's code."""
    if response.status_code == 201:
        return 201
    code: str = response.json()["code"]
    return code


async def claims_of(svc: RunningAllocation, vendor_id: str) -> dict[str, Any]:
    """The vendor's claims as an administrator sees them."""
    async with staff(svc) as c:
        response = await c.get(f"/v1/vendors/{vendor_id}/claims")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def claim_id(claims: dict[str, Any], kind: str, value: str | None = None) -> str:
    """The id of the vendor's claim of that kind (and value)."""
    (found,) = [
        c["id"]
        for c in claims["claims"]
        if c["kind"] == kind and (value is None or c["value"] == value)
    ]
    return str(found)


async def decide(
    svc: RunningAllocation, vendor_id: str, claim: str, client: Any = None, **decision: Any
) -> httpx.Response:
    """POST a decision on a claim (as an administrator unless ``client`` is given)."""
    path = f"/v1/vendors/{vendor_id}/claims/{claim}/decision"
    if client is not None:
        response: httpx.Response = await client.post(path, json=decision)
        return response
    async with staff(svc) as c:
        response = await c.post(path, json=decision)
    return response


def verified(document_ref: str = "珠香民证 2026-001", **more: Any) -> dict[str, Any]:
    """The body of a verification."""
    return {"decision": "verified", "document_ref": document_ref, **more}


async def register(svc: RunningAllocation, **changes: Any) -> RegisteredVendor:
    """A vendor registered over HTTP: priority group, daily goods, cooked food, certificate."""
    fields = {
        "name": "陈小梅", "phone": "13622223333", "password": "correct horse battery",
        "priority_group": "laid_off", "categories": ["daily_goods", "cooked_food"],
        "health_certificate_expires": "2027-06-30", **changes,
    }  # fmt: skip
    return await svc.register(**fields)


async def test_unverified_claims_do_not_count_until_an_administrator_verifies_them(
    svc: RunningAllocation,
) -> None:
    vendor = await register(svc)
    claims = await claims_of(svc, vendor.id)
    assert claims["eligibility"] == {
        "priority_group": "none",
        "priority_group_expires": None,
        "categories": [],
        "health_certificate_expires": None,
    }
    # Nothing verified: no category, and the priority group does not open D-7.
    assert code_of(await book(svc, vendor.id, "XZ-91-C001", MONDAY)) == "category_not_permitted"
    assert code_of(await book(svc, vendor.id, "XZ-91-A001", MONDAY)) == "category_not_permitted"

    # The daily goods permit verified: a standard vendor for daily goods only.
    ok = await decide(svc, vendor.id, claim_id(claims, "category", "daily_goods"), **verified())
    assert ok.status_code == 200, ok.text
    assert code_of(await book(svc, vendor.id, "XZ-91-C001", MONDAY)) == 201
    assert (
        code_of(await book(svc, vendor.id, "XZ-91-C002", NEXT_MONDAY)) == "outside_booking_horizon"
    )
    assert code_of(await book(svc, vendor.id, "XZ-91-A001", TUESDAY)) == "category_not_permitted"

    # The cooked food permit verified, the certificate not yet: it must be verified too.
    await decide(svc, vendor.id, claim_id(claims, "category", "cooked_food"), **verified())
    cooked = await book(svc, vendor.id, "XZ-91-A001", TUESDAY)
    assert code_of(cooked) == "health_certificate_required"
    await decide(svc, vendor.id, claim_id(claims, "health_certificate"), **verified())
    assert code_of(await book(svc, vendor.id, "XZ-91-A001", TUESDAY)) == 201

    # The priority group verified: D-7 opens, and the booking counts as a priority one.
    await decide(svc, vendor.id, claim_id(claims, "priority_group"), **verified())
    early = await book(svc, vendor.id, "XZ-91-C002", NEXT_MONDAY)
    assert code_of(early) == 201
    stored = await svc.allocation.ledger.get(early.json()["id"])
    assert stored is not None
    assert stored.priority

    async with vendor_client(svc, vendor.id) as c:
        me = (await c.get("/v1/vendors/me")).json()
    assert me["priority_group"] == "laid_off"
    assert me["categories"] == ["cooked_food", "daily_goods"]
    assert me["health_certificate_expires"] == "2027-06-30"  # as stated, verified
    assert {c["status"] for c in me["claims"]} == {"verified"}
    assert {c["decided_by"] for c in me["claims"]} == {"admin-1"}


async def test_a_rejection_shows_its_reason_and_a_revocation_stops_the_claim_counting(
    svc: RunningAllocation,
) -> None:
    vendor = await register(svc)
    claims = await claims_of(svc, vendor.id)
    reason = "失业证明已过期 The unemployment certificate has expired"
    rejected = await decide(
        svc, vendor.id, claim_id(claims, "priority_group"), decision="rejected", reason=reason
    )
    assert rejected.status_code == 200, rejected.text
    goods = claim_id(claims, "category", "daily_goods")
    await decide(svc, vendor.id, goods, **verified())
    assert code_of(await book(svc, vendor.id, "XZ-91-C001", MONDAY)) == 201

    async with vendor_client(svc, vendor.id) as c:
        me = (await c.get("/v1/vendors/me")).json()
    (group,) = [c for c in me["claims"] if c["kind"] == "priority_group"]
    assert (group["status"], group["reason"]) == ("rejected", reason)
    assert me["priority_group"] == "none"

    # A decided claim is not decided again, but a verified one can be revoked.
    again = await decide(svc, vendor.id, claim_id(claims, "priority_group"), **verified())
    assert (again.status_code, again.json()["code"]) == (409, "illegal_claim_transition")
    twice = await decide(svc, vendor.id, goods, **verified())
    assert (twice.status_code, twice.json()["code"]) == (409, "illegal_claim_transition")
    revoked = await decide(svc, vendor.id, goods, decision="rejected", reason="许可证被吊销")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["eligibility"]["categories"] == []
    assert code_of(await book(svc, vendor.id, "XZ-91-C002", TUESDAY)) == "category_not_permitted"
    unknown = await decide(svc, vendor.id, "cl_0000000000000000", **verified())
    assert (unknown.status_code, unknown.json()["code"]) == (404, "claim_not_found")


async def test_an_expired_verification_stops_counting_at_the_booking_date(
    svc: RunningAllocation,
) -> None:
    vendor = await register(svc)
    claims = await claims_of(svc, vendor.id)
    await decide(
        svc, vendor.id, claim_id(claims, "category", "daily_goods"),
        **verified(expires=TUESDAY.isoformat()),
    )  # fmt: skip
    await decide(
        svc, vendor.id, claim_id(claims, "priority_group"),
        **verified(expires=(NEXT_MONDAY - timedelta(days=1)).isoformat()),
    )  # fmt: skip
    await decide(svc, vendor.id, claim_id(claims, "category", "cooked_food"), **verified())
    await decide(
        svc, vendor.id, claim_id(claims, "health_certificate"),
        **verified(expires=MONDAY.isoformat()),  # staff read another date off the certificate
    )  # fmt: skip

    assert code_of(await book(svc, vendor.id, "XZ-91-C001", TUESDAY)) == 201  # its last day
    wednesday = await book(svc, vendor.id, "XZ-91-C002", WEDNESDAY)
    assert code_of(wednesday) == "category_not_permitted"
    # Priority now, but not on the date booked: a standard vendor for NEXT_MONDAY.
    early = await book(svc, vendor.id, "XZ-91-A002", NEXT_MONDAY)
    assert code_of(early) == "outside_booking_horizon"
    assert code_of(await book(svc, vendor.id, "XZ-91-A001", MONDAY)) == 201
    later = await book(svc, vendor.id, "XZ-91-A003", WEDNESDAY)
    assert code_of(later) == "health_certificate_required"

    # What the lottery reads: the vendor as verified and valid on the window's date.
    on_monday = await svc.allocation.vendors.get(vendor.id, on=MONDAY)
    on_next = await svc.allocation.vendors.get(vendor.id, on=NEXT_MONDAY)
    assert on_monday is not None
    assert on_next is not None
    assert on_monday.priority_group.is_priority
    assert {c.value for c in on_monday.categories} == {"cooked_food", "daily_goods"}
    assert on_monday.health_certificate_expires == MONDAY
    assert not on_next.priority_group.is_priority
    assert {c.value for c in on_next.categories} == {"cooked_food"}
    assert on_next.health_certificate_expires is None

    # Days later the profile shows what still counts.
    set_now(svc.clock, local(WEDNESDAY, 10))
    async with vendor_client(svc, vendor.id) as c:
        me = (await c.get("/v1/vendors/me")).json()
    assert me["categories"] == ["cooked_food"]
    assert me["health_certificate_expires"] is None
    assert me["priority_group"] == "laid_off"
    past = await decide(
        svc, vendor.id, claim_id(claims, "category", "daily_goods"), decision="rejected",
        reason="x",
    )  # fmt: skip
    assert past.status_code == 200  # a verification can be revoked after it expired


async def test_a_verification_that_would_have_expired_is_refused(svc: RunningAllocation) -> None:
    vendor = await register(svc, health_certificate_expires="2026-12-01")  # before MONDAY
    claims = await claims_of(svc, vendor.id)
    certificate = await decide(svc, vendor.id, claim_id(claims, "health_certificate"), **verified())
    expired = await decide(
        svc, vendor.id, claim_id(claims, "priority_group"),
        **verified(expires=(MONDAY - timedelta(days=1)).isoformat()),
    )  # fmt: skip
    assert (certificate.status_code, certificate.json()["code"]) == (422, "date_in_past")
    assert (expired.status_code, expired.json()["code"]) == (422, "date_in_past")
    assert (await claims_of(svc, vendor.id))["eligibility"]["priority_group"] == "none"


async def test_a_vendor_adds_a_claim_later(svc: RunningAllocation) -> None:
    vendor = await register(svc, priority_group="none", categories=["daily_goods"])
    async with vendor_client(svc, vendor.id) as c:
        added = await c.post(
            "/v1/vendors/me/claims", json={"kind": "category", "value": "crafts_culture"}
        )
        same = await c.post(
            "/v1/vendors/me/claims", json={"kind": "category", "value": "crafts_culture"}
        )
        group = await c.post(
            "/v1/vendors/me/claims", json={"kind": "priority_group", "value": "college_student"}
        )
        renewal = await c.post(
            "/v1/vendors/me/claims", json={"kind": "health_certificate", "value": "2028-01-31"}
        )
        stale = await c.post(
            "/v1/vendors/me/claims", json={"kind": "health_certificate", "value": "2026-12-06"}
        )
    assert added.status_code == 201, added.text
    assert (added.json()["kind"], added.json()["value"], added.json()["status"]) == (
        "category", "crafts_culture", "claimed",
    )  # fmt: skip
    assert (same.status_code, same.json()["code"]) == (409, "claim_pending")
    async with vendor_client(svc, vendor.id) as c:
        mine = (await c.get("/v1/vendors/me/claims")).json()
    assert [c["value"] for c in mine] == [  # oldest first: the registration's, then the added
        "daily_goods", "2027-06-30", "crafts_culture", "college_student", "2028-01-31",
    ]  # fmt: skip
    assert group.status_code == renewal.status_code == 201
    assert (stale.status_code, stale.json()["code"]) == (422, "date_in_past")
    await decide(svc, vendor.id, added.json()["id"], **verified())
    after = await claims_of(svc, vendor.id)
    assert [p["category"] for p in after["eligibility"]["categories"]] == ["crafts_culture"]
    assert len(after["claims"]) == 5  # daily goods, the certificate, crafts, group, renewal


async def test_district_staff_and_administrators_verify_others_may_not(
    svc: RunningAllocation,
) -> None:
    vendor = await register(svc)
    claims = await claims_of(svc, vendor.id)
    goods = claim_id(claims, "category", "daily_goods")
    path = f"/v1/vendors/{vendor.id}/claims/{goods}/decision"
    paths = [("GET", "/v1/claims", None), ("GET", f"/v1/vendors/{vendor.id}/claims", None),
             ("POST", path, verified())]  # fmt: skip
    patrol = dev_token(Role.PATROL, "p1", now=svc.clock.now(), ttl_seconds=TTL,
                       district="xiangzhou")  # fmt: skip
    for method, url, body in paths:
        async with svc.client() as c:
            nobody = await c.request(method, url, json=body)
        async with svc.client(patrol) as c:
            as_patrol = await c.request(method, url, json=body)
        async with vendor_client(svc, vendor.id) as c:
            as_vendor = await c.request(method, url, json=body)
        assert (nobody.status_code, nobody.json()["code"]) == (401, "unauthorized")
        assert (as_patrol.status_code, as_patrol.json()["code"]) == (403, "forbidden")
        assert (as_vendor.status_code, as_vendor.json()["code"]) == (403, "forbidden")

    # The work queue: pending claims oldest first, with whose they are.
    later = await register(
        svc, phone="13622224444", priority_group="none", categories=["crafts_culture"],
        health_certificate_expires=None,
    )  # fmt: skip
    async with staff(svc, Role.DISTRICT, "doumen") as c:  # vendors have no district: any staff
        first = (await c.get("/v1/claims", params={"status": "claimed", "limit": 4})).json()
        second = (await c.get("/v1/claims", params={"limit": 4, "offset": 4})).json()
        decided = await decide(svc, vendor.id, goods, client=c, **verified())
        pending = (await c.get("/v1/claims")).json()
        done = (await c.get("/v1/claims", params={"status": "verified"})).json()
    assert first["total"] == 5
    assert {q["id"] for q in first["items"]} == {c["id"] for c in claims["claims"]}
    assert {q["vendor_name"] for q in first["items"]} == {"陈小梅"}
    assert first["next_offset"] == 4
    assert [(q["vendor_id"], q["value"]) for q in second["items"]] == [(later.id, "crafts_culture")]
    assert second["next_offset"] is None
    assert decided.status_code == 200, decided.text
    assert pending["total"] == 4
    assert goods not in {q["id"] for q in pending["items"]}
    assert [(d["id"], d["decided_by"]) for d in done["items"]] == [(goods, "district-1")]


async def test_a_decision_publishes_a_valid_eligibility_event(
    svc: RunningAllocation,
    topic_reader: Callable[[str], Any],
    contract_check: Callable[[bytes], Any],
) -> None:
    reader = await topic_reader(svc.settings.topic(BOOKINGS.name))
    vendor = await register(svc)
    claims = await claims_of(svc, vendor.id)
    await decide(svc, vendor.id, claim_id(claims, "category", "cooked_food"), **verified())
    await decide(
        svc, vendor.id, claim_id(claims, "health_certificate"),
        **verified(expires="2027-03-31"),
    )  # fmt: skip
    await decide(
        svc, vendor.id, claim_id(claims, "priority_group"), decision="rejected", reason="材料不全"
    )

    def changes(records: list[Any]) -> list[Any]:
        return [r for r in records if b"vendor.eligibility.changed" in dict(r.headers)["ce_type"]]

    records = changes(await reader.collect_until(lambda rs: len(changes(rs)) >= 3))
    events = [contract_check(r.value) for r in records]
    assert {r.key for r in records} == {b"vendors"}  # not a market: one partition, in order
    assert [e.subject for e in events] == [vendor.id] * 3
    assert [e.data["decision"] for e in events] == ["verified", "verified", "rejected"]
    last = events[-1].data
    assert last == {
        "market_id": "vendors",
        "vendor_id": vendor.id,
        "priority_group": "none",
        "priority_until": None,
        "categories": ["cooked_food"],
        "category_until": {},
        "health_certificate_until": "2027-03-31",
        "claim_id": claim_id(claims, "priority_group"),
        "claim_kind": "priority_group",
        "claim_value": "laid_off",
        "decision": "rejected",
        "decided_by": "admin-1",
    }
    for record in records:  # ids only: no name, phone, document or reason
        raw = record.value.decode()
        for private in ("陈小梅", vendor.phone, "珠香民证", "材料不全"):
            assert private not in raw
    assert json.loads(records[0].value)["marketid"] == "vendors"


async def test_vendors_registered_before_claims_have_what_they_typed_claimed_once(
    svc: RunningAllocation,
) -> None:
    """An upgraded store: the typed eligibility becomes pending claims and stops counting."""
    redis, keys = svc.allocation.vendors.redis, svc.allocation.keys
    await redis.hset(
        keys.vendor("vd_legacy0000001"),
        mapping={
            "id": "vd_legacy0000001", "name": "老摊贩", "phone": "13633334444",
            "password": "x", "priority_group": "low_income", "priority": "1",
            "categories": "daily_goods,services", "health_until": "2027-01-31",
            "suspended_until": "0", "created_ts": "1700000000.0",
        },
    )  # fmt: skip
    assert code_of(await book(svc, "vd_legacy0000001", "XZ-91-C001", MONDAY)) == 201  # as before
    now = svc.clock.now()
    assert await svc.allocation.vendors.adopt_typed_eligibility(now) == 1
    assert await svc.allocation.vendors.adopt_typed_eligibility(now) == 0  # once
    claims = await claims_of(svc, "vd_legacy0000001")
    assert {(c["kind"], c["value"], c["status"]) for c in claims["claims"]} == {
        ("priority_group", "low_income", "claimed"),
        ("category", "daily_goods", "claimed"),
        ("category", "services", "claimed"),
        ("health_certificate", "2027-01-31", "claimed"),
    }
    assert claims["eligibility"]["categories"] == []
    assert code_of(await book(svc, "vd_legacy0000001", "XZ-91-C002", TUESDAY)) == (
        "category_not_permitted"
    )
    await decide(svc, "vd_legacy0000001", claim_id(claims, "category", "daily_goods"), **verified())
    assert code_of(await book(svc, "vd_legacy0000001", "XZ-91-C002", TUESDAY)) == 201


async def test_concurrent_decisions_on_one_vendor_lose_nothing(svc: RunningAllocation) -> None:
    """Each decision is computed from one read of the vendor's claims and written only if they
    did not change meanwhile: decisions at once on every claim all count, and two on one claim
    decide it once."""
    vendor = await register(svc)
    claims = await claims_of(svc, vendor.id)
    ids = [c["id"] for c in claims["claims"]]
    answers = await asyncio.gather(
        *(decide(svc, vendor.id, i, **verified()) for i in ids),
        decide(svc, vendor.id, ids[0], decision="rejected", reason="重复"),
    )
    codes = Counter(code_of_decision(a) for a in answers)
    # The rejection first (the verification of that claim is then refused), or after (revoking).
    assert codes in (Counter({200: 5}), Counter({200: 4, "illegal_claim_transition": 1}))
    after = await claims_of(svc, vendor.id)
    statuses = {c["id"]: c["status"] for c in after["claims"]}
    assert statuses == {i: "rejected" if i == ids[0] else "verified" for i in ids}
    eligibility = after["eligibility"]
    assert {p["category"] for p in eligibility["categories"]} == {"cooked_food", "daily_goods"}
    assert eligibility["health_certificate_expires"] == "2027-06-30"


def code_of_decision(response: httpx.Response) -> int | str:
    """200, or the problem's code."""
    return 200 if response.status_code == 200 else str(response.json()["code"])
