"""Hostile and malformed requests: every answer is a 4xx problem+json with a stable code.

The requests here change nothing they are refused for, so one service serves the whole module
(starting and stopping one per case would dominate the run time).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from stallkit.auth import Role
from stalltest.allocation import (
    MONDAY,
    RunningAllocation,
    serve_seeded,
    small_catalogue,
)
from stalltest.plugin import Infra, Isolation
from stalltest.tokens import dev_token, forged_token

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
KB = 1024
BOOKING = {"stall_id": "XZ-91-C001", "date": MONDAY.isoformat(), "window_id": "evening"}
REGISTRATION = {
    "name": "测试摊贩",
    "phone": "13800000001",
    "password": "long-enough-password",
    "identity_number": "440402199001011236",
    "categories": ["daily_goods"],
}
DECISION = {"decision": "verified", "document_ref": "doc-1"}
CLAIM_PATH = "/v1/vendors/vd_nobody/claims/cl_0000000000000000/decision"
SUSPENSION = {
    "first_date": MONDAY.isoformat(),
    "last_date": MONDAY.isoformat(),
    "reason": "测试",
}
JSON = {"Content-Type": "application/json"}
MARKET = small_catalogue().markets[0].model_dump(mode="json")
#: Text no name, reason or label may hold (each case also fails on the earlier code).
HOSTILE_TEXT = {
    "nul": "陈\x00小梅",
    "bell": "ding\x07dong",
    "terminal-escape": "\x1b[2J\x1b[31m陈小梅",
    "right-to-left-override": "陈小梅\u202egpj.exe",
    "isolate": "\u2067陈小梅\u2069",
    "zero-width-only": "\u200b\u200c\u200d",
    "bom-only": "\ufeff",
}


@pytest.fixture(scope="module")
async def api(infra: Infra) -> AsyncIterator[RunningAllocation]:
    """One allocation service for the module, small catalogue loaded, clock at MONDAY 10:00."""
    isolation = Isolation.fresh(infra)
    async with serve_seeded(isolation) as running:
        yield running


def token_for(api: RunningAllocation, who: str) -> str | None:
    """A bearer token of the given kind (``None``: no Authorization header)."""
    now = api.clock.now()
    match who:
        case "none":
            return None
        case "vendor":
            return api.token("vd_nobody")
        case "admin":
            return api.token("admin", Role.ADMIN)
        case "patrol":
            return dev_token(Role.PATROL, "p1", now=now, ttl_seconds=600, district="xiangzhou")
        case "garbage":
            return "not-a-token"
        case "three-dots":
            return "aaa.bbb.ccc"
        case "expired":
            return api.token("vd_nobody", ttl=-60)
        case "wrong-signature":
            return forged_token(Role.VENDOR, "vd_nobody", now=now, ttl_seconds=600)
        case "forged-admin":
            return forged_token(Role.ADMIN, "admin", now=now, ttl_seconds=600)
    raise AssertionError(who)


@dataclass(frozen=True)
class Case:
    """One bad request and the problem it must get."""

    method: str
    path: str
    status: int
    code: str
    who: str = "vendor"
    json: Any = None
    content: bytes | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def booking(**changes: Any) -> Case:
    """POST /v1/bookings with the body changed; expects 422 validation_failed."""
    body = {**BOOKING, **changes}
    return Case("POST", "/v1/bookings", 422, "validation_failed", json=body,
                headers={"Idempotency-Key": "k"})  # fmt: skip


def registration(**changes: Any) -> Case:
    """POST /v1/vendors with the body changed; expects 422 validation_failed."""
    return Case("POST", "/v1/vendors", 422, "validation_failed", who="none",
                json={**REGISTRATION, **changes})  # fmt: skip


IDEM = {"Idempotency-Key": "k", **JSON}
ADMIN_ONLY = [
    ("GET", "/v1/admin/stalls/XZ-91-C001/code", None),
    ("POST", "/v1/admin/stalls/XZ-91-C001/code", None),
    ("DELETE", "/v1/admin/stalls/XZ-91-C001/code", None),
    ("GET", "/v1/stalls/XZ-91-C001/code.svg", None),
    ("GET", "/v1/stalls/XZ-91-C001/code.png", None),
    ("GET", "/v1/admin/markets/XZ-91/codes", None),
    ("POST", "/v1/admin/markets/XZ-91/suspensions", SUSPENSION),
    ("PUT", "/v1/admin/catalogue", small_catalogue().model_dump(mode="json")),
    ("PUT", "/v1/admin/markets/XZ-91", small_catalogue().markets[0].model_dump(mode="json")),
    ("PUT", "/v1/admin/stalls/XZ-91-C001", small_catalogue().stalls[10].model_dump(mode="json")),
]
STAFF_ONLY = [
    ("GET", "/v1/claims", None),
    ("GET", "/v1/vendors/vd_nobody/claims", None),
    ("POST", CLAIM_PATH, DECISION),
]
VENDOR_ONLY = [
    ("GET", "/v1/vendors/me/claims", None),
    ("POST", "/v1/vendors/me/claims", {"kind": "category", "value": "crafts_culture"}),
    ("GET", "/v1/vendors/me", None),
    ("GET", "/v1/bookings", None),
    ("POST", "/v1/bookings", BOOKING),
    ("GET", "/v1/bookings/bk_0000000000000000", None),
    ("DELETE", "/v1/bookings/bk_0000000000000000", None),
    ("POST", "/v1/bookings/bk_0000000000000000/check-in", {"code": "x"}),
]

CASES: dict[str, Case] = {
    # bodies that are not the JSON they claim to be
    "malformed-json": Case("POST", "/v1/bookings", 422, "validation_failed",
                           content=b'{"stall_id": "XZ-91-C001",', headers=IDEM),
    "json-array": Case("POST", "/v1/bookings", 422, "validation_failed", json=[BOOKING],
                       headers={"Idempotency-Key": "k"}),
    "json-null": Case("POST", "/v1/bookings", 422, "validation_failed", content=b"null",
                      headers=IDEM),
    "empty-body": Case("POST", "/v1/bookings", 422, "validation_failed", content=b"",
                       headers=IDEM),
    "not-utf8": Case("POST", "/v1/bookings", 400, "malformed_body",
                     content=b'{"stall_id": "\xff\xfe"}', headers=IDEM),
    "text-plain": Case("POST", "/v1/bookings", 422, "validation_failed",
                       content=b'{"stall_id": "XZ-91-C001"}',
                       headers={"Idempotency-Key": "k", "Content-Type": "text/plain"}),
    "deeply-nested": Case("POST", "/v1/bookings", 400, "malformed_body",
                          content=b"[" * 60_000 + b"]" * 60_000, headers=IDEM),
    # wrong types
    "stall-id-number": booking(stall_id=123),
    "date-number": booking(date=20261207),
    "window-list": booking(window_id=["evening"]),
    "date-bool": booking(date=True),
    "categories-string": registration(categories="daily_goods"),
    "password-number": registration(password=12345678),
    # sizes
    "stall-id-100kb": booking(stall_id="X" * (100 * KB)),
    "name-100kb": registration(name="摊" * (100 * KB // 3)),
    "code-100kb": Case("POST", "/v1/bookings/bk_0000000000000000/check-in", 422,
                       "validation_failed", json={"code": "Z" * (100 * KB)}),
    "body-1mb": Case("POST", "/v1/bookings", 413, "payload_too_large",
                     json={**BOOKING, "padding": "x" * KB * KB}, headers={"Idempotency-Key": "k"}),
    "register-1mb": Case("POST", "/v1/vendors", 413, "payload_too_large", who="none",
                         json={**REGISTRATION, "name": "x" * KB * KB}),
    # unknown fields
    "booking-unknown-field": booking(vendor_id="vd_someone_else"),
    "registration-unknown-field": registration(is_admin=True),
    "check-in-unknown-field": Case("POST", "/v1/bookings/bk_0000000000000000/check-in", 422,
                                   "validation_failed", json={"code": "x", "at": "now"}),
    "suspension-unknown-field": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                     "validation_failed", who="admin",
                                     json={**SUSPENSION, "cancel": False}),
    # dates
    "date-month-13": booking(date="2026-13-07"),
    "date-feb-30": booking(date="2026-02-30"),
    "date-words": booking(date="tomorrow"),
    "date-empty": booking(date=""),
    "availability-bad-date": Case("GET", "/v1/markets/XZ-91/availability?date=2026-99-01", 422,
                                  "validation_failed", who="none"),
    "suspension-bad-date": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                "validation_failed", who="admin",
                                json={**SUSPENSION, "last_date": "soon"}),
    # dates at the edges of the calendar, and dates spelled other than YYYY-MM-DD
    **{f"availability-{d}": Case("GET", f"/v1/markets/XZ-91/availability?date={d}", 422,
                                 "date_out_of_range", who="none")
       for d in ("0001-01-01", "0001-01-07", "9999-12-31", "2026-12-05", "2027-02-06")},
    **{f"availability-spelled-{name}": Case("GET", f"/v1/markets/XZ-91/availability?date={d}",
                                            422, "validation_failed", who="none")
       for name, d in (("zero", "0"), ("timestamp", "1765065600"), ("midnight-datetime",
                       "2026-12-07T00:00:00"), ("unicode-digits", "２０２６-１２-０７"),
                       ("short", "2026-12-7"))},
    **{f"booking-date-{d}": replace(booking(date=d), status=409, code="window_passed")
       for d in ("0001-01-01", "0001-01-07", "2026-12-05")},
    **{f"booking-date-{d}": replace(booking(date=d), code="outside_booking_horizon")
       for d in ("9999-12-31", "2027-01-01")},
    "booking-date-zero": booking(date=0),
    "booking-date-datetime": booking(date="2026-12-07T00:00:00"),
    "booking-date-zero-string": booking(date="0"),
    "health-certificate-zero": registration(health_certificate_expires=0),
    "health-certificate-datetime": registration(health_certificate_expires="2027-01-01T00:00"),
    "suspension-date-zero": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                 "validation_failed", who="admin",
                                 json={**SUSPENSION, "first_date": 0}),
    "suspension-year-1": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                              "date_in_past", who="admin",
                              json={**SUSPENSION, "first_date": "0001-01-01",
                                    "last_date": "0001-01-07"}),
    "suspension-yesterday": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                 "date_in_past", who="admin",
                                 json={**SUSPENSION, "first_date": "2026-12-06"}),
    "suspension-year-9999": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                 "date_out_of_range", who="admin",
                                 json={**SUSPENSION, "first_date": "9999-12-30",
                                       "last_date": "9999-12-31"}),
    "suspension-whole-calendar": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                      "date_in_past", who="admin",
                                      json={**SUSPENSION, "first_date": "0001-01-01",
                                            "last_date": "9999-12-31"}),
    # free text that lies about itself on a screen or in a terminal
    **{f"name-{name}": registration(name=text) for name, text in HOSTILE_TEXT.items()},
    **{f"reason-{name}": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                              "validation_failed", who="admin",
                              json={**SUSPENSION, "reason": text})
       for name, text in HOSTILE_TEXT.items()},
    **{f"market-name-{name}": Case("PUT", "/v1/admin/markets/XZ-91", 422, "validation_failed",
                                   who="admin", json={**MARKET, "name_zh": text})
       for name, text in HOSTILE_TEXT.items()},
    "window-name-escape": Case("PUT", "/v1/admin/markets/XZ-91/schedule", 422,
                               "validation_failed", who="admin",
                               json=[{**MARKET["windows"][0], "name_en": "\x1b[2J"}]),
    "catalogue-address-rlo": Case("PUT", "/v1/admin/catalogue", 422, "validation_failed",
                                  who="admin", json={"markets": [{**MARKET,
                                  "address_zh": "路\u202e号"}], "stalls": []}),
    # identifiers
    "stall-id-lowercase": booking(stall_id="xz-91-c001"),
    "stall-id-too-long": booking(stall_id="XZ-91-C0001"),
    "stall-id-traversal": booking(stall_id="../../etc/passwd"),
    "stall-id-injection": booking(stall_id="XZ-91-C001' OR 1=1"),
    "stall-id-newline": booking(stall_id="XZ-91-C001\n"),
    "window-id-pattern": booking(window_id="Evening!"),
    "idempotency-key-too-long": Case("POST", "/v1/bookings", 422, "validation_failed",
                                     json=BOOKING, headers={"Idempotency-Key": "k" * 200}),
    "idempotency-key-space": Case("POST", "/v1/bookings", 422, "validation_failed",
                                  json=BOOKING, headers={"Idempotency-Key": "a b"}),
    "booking-id-very-long": Case("GET", "/v1/bookings/" + "b" * 5000, 404, "booking_not_found"),
    "market-unicode": Case("GET", "/v1/markets/%E5%B8%82%E5%9C%BA", 404, "market_not_found",
                           who="none"),
    "availability-unknown-market": Case("GET", "/v1/markets/ZZ-00/availability", 404,
                                        "market_not_found", who="none"),
    "code-svg-unknown-stall": Case("GET", "/v1/stalls/XZ-91-Z999/code.svg", 404,
                                   "stall_not_found", who="admin"),
    # query strings
    "limit-zero": Case("GET", "/v1/bookings?limit=0", 422, "validation_failed"),
    "limit-huge": Case("GET", "/v1/bookings?limit=100000", 422, "validation_failed"),
    "limit-words": Case("GET", "/v1/bookings?limit=all", 422, "validation_failed"),
    "district-unknown": Case("GET", "/v1/markets?district=atlantis", 422, "validation_failed",
                             who="none"),
    "category-unknown": Case("GET", "/v1/markets?category=weapons", 422, "validation_failed",
                             who="none"),
    "open-now-words": Case("GET", "/v1/markets?open_now=perhaps", 422, "validation_failed",
                           who="none"),
    # registration and login
    "phone-not-mobile": registration(phone="12345"),
    "phone-letters": registration(phone="1380013800a"),
    "password-short": registration(password="short"),
    "categories-empty": registration(categories=[]),
    "category-unknown-in-body": registration(categories=["weapons"]),
    "priority-group-unknown": registration(priority_group="vip"),
    "name-blank": registration(name="   "),
    "identity-missing": Case("POST", "/v1/vendors", 422, "validation_failed", who="none",
                             json={k: v for k, v in REGISTRATION.items()
                                   if k != "identity_number"}),
    "identity-wrong-check-digit": registration(identity_number="440402199001011237"),
    "identity-lowercase-x": registration(identity_number="11010519491231002x"),
    "identity-17-digits": registration(identity_number="44040219900101123"),
    "identity-19-digits": registration(identity_number="4404021990010112360"),
    "identity-number": registration(identity_number=440402199001011236),
    "identity-fullwidth-digits": registration(identity_number="４４０４０２" + "1990010112３６"),
    "verify-short-code": Case("POST", "/v1/vendors/verify", 422, "validation_failed", who="none",
                              json={"registration_id": "rg_0000000000000000", "code": "12345"}),
    "verify-code-number": Case("POST", "/v1/vendors/verify", 422, "validation_failed",
                               who="none", json={"registration_id": "rg_0000000000000000",
                                                 "code": 123456}),
    "verify-bad-id": Case("POST", "/v1/vendors/verify", 422, "validation_failed", who="none",
                          json={"registration_id": "../../etc", "code": "123456"}),
    "verify-unknown-registration": Case("POST", "/v1/vendors/verify", 404,
                                        "registration_not_found", who="none",
                                        json={"registration_id": "rg_0000000000000000",
                                              "code": "123456"}),
    # eligibility claims
    "claim-kind-unknown": Case("POST", "/v1/vendors/me/claims", 422, "validation_failed",
                               json={"kind": "vip", "value": "yes"}),
    "claim-group-none": Case("POST", "/v1/vendors/me/claims", 422, "validation_failed",
                             json={"kind": "priority_group", "value": "none"}),
    "claim-category-unknown": Case("POST", "/v1/vendors/me/claims", 422, "validation_failed",
                                   json={"kind": "category", "value": "weapons"}),
    "claim-certificate-not-a-date": Case("POST", "/v1/vendors/me/claims", 422,
                                         "validation_failed",
                                         json={"kind": "health_certificate", "value": "soon"}),
    "claim-unknown-vendor": Case("POST", "/v1/vendors/me/claims", 404, "vendor_not_found",
                                 json={"kind": "category", "value": "crafts_culture"}),
    "decision-unknown": Case("POST", CLAIM_PATH, 422, "validation_failed", who="admin",
                             json={"decision": "maybe"}),
    "decision-verify-without-document": Case("POST", CLAIM_PATH, 422, "validation_failed",
                                             who="admin", json={"decision": "verified"}),
    "decision-reject-without-reason": Case("POST", CLAIM_PATH, 422, "validation_failed",
                                           who="admin", json={"decision": "rejected"}),
    "decision-reject-blank-reason": Case("POST", CLAIM_PATH, 422, "validation_failed",
                                         who="admin", json={"decision": "rejected",
                                                            "reason": "  "}),
    "decision-verify-with-reason": Case("POST", CLAIM_PATH, 422, "validation_failed",
                                        who="admin", json={**DECISION, "reason": "ok"}),
    "decision-expires-datetime": Case("POST", CLAIM_PATH, 422, "validation_failed",
                                      who="admin",
                                      json={**DECISION, "expires": "2027-01-01T00:00"}),
    "decision-document-escape": Case("POST", CLAIM_PATH, 422, "validation_failed",
                                     who="admin", json={**DECISION, "document_ref": "\x1b[2J"}),
    "decision-unknown-vendor": Case("POST", CLAIM_PATH, 404, "vendor_not_found", who="admin",
                                    json=DECISION),
    "decision-bad-claim-id": Case("POST", "/v1/vendors/vd_nobody/claims/x/decision", 422,
                                  "validation_failed", who="admin", json=DECISION),
    "claims-of-unknown-vendor": Case("GET", "/v1/vendors/vd_nobody/claims", 404,
                                     "vendor_not_found", who="admin"),
    "claims-of-bad-vendor-id": Case("GET", "/v1/vendors/not-a-vendor/claims", 422,
                                    "validation_failed", who="admin"),
    "claims-status-unknown": Case("GET", "/v1/claims?status=approved", 422,
                                  "validation_failed", who="admin"),
    "claims-limit-huge": Case("GET", "/v1/claims?limit=100000", 422, "validation_failed",
                              who="admin"),
    "login-json": Case("POST", "/v1/auth/token", 422, "validation_failed", who="none",
                       json={"username": "13800000001", "password": "x"}),
    "login-no-password": Case("POST", "/v1/auth/token", 422, "validation_failed", who="none",
                              data={"username": "13800000001"}),
    "login-username-huge": Case("POST", "/v1/auth/token", 401, "invalid_credentials",
                                who="none", data={"username": "1" * 5000, "password": "x"}),
    # suspensions
    "suspension-backwards": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                 "invalid_date_range", who="admin",
                                 json={**SUSPENSION, "first_date": "2026-12-08"}),
    "suspension-too-long": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                "suspension_too_long", who="admin",
                                json={**SUSPENSION, "last_date": "2027-03-01"}),
    "suspension-no-reason": Case("POST", "/v1/admin/markets/XZ-91/suspensions", 422,
                                 "validation_failed", who="admin",
                                 json={**SUSPENSION, "reason": ""}),
    "suspension-unknown-market": Case("POST", "/v1/admin/markets/ZZ-00/suspensions", 404,
                                      "market_not_found", who="admin", json=SUSPENSION),
    "schedule-repeated-window": Case("PUT", "/v1/admin/markets/XZ-91/schedule", 422,
                                     "validation_failed", who="admin",
                                     json=[MARKET["windows"][0], MARKET["windows"][0]]),
    "check-in-empty-code": Case("POST", "/v1/bookings/bk_0000000000000000/check-in", 422,
                                "validation_failed", json={"code": ""}),
    # tokens
    "no-token": Case("GET", "/v1/bookings", 401, "unauthorized", who="none"),
    "garbage-token": Case("GET", "/v1/bookings", 401, "unauthorized", who="garbage"),
    "three-dots-token": Case("GET", "/v1/bookings", 401, "unauthorized", who="three-dots"),
    "expired-token": Case("GET", "/v1/bookings", 401, "token_expired", who="expired"),
    "wrong-signature-token": Case("GET", "/v1/bookings", 401, "unauthorized",
                                  who="wrong-signature"),
    "forged-admin-token": Case("POST", "/v1/admin/stalls/XZ-91-C001/code", 401, "unauthorized",
                               who="forged-admin"),
    "basic-auth": Case("GET", "/v1/vendors/me", 401, "unauthorized", who="none",
                       headers={"Authorization": "Basic YWRtaW46YWRtaW4="}),
    "bearer-empty": Case("GET", "/v1/vendors/me", 401, "unauthorized", who="none",
                         headers={"Authorization": "Bearer"}),
    # roles
    **{f"vendor-on-{m.lower()}-{p}": Case(m, p, 403, "forbidden", json=j)
       for m, p, j in ADMIN_ONLY},
    **{f"patrol-on-{m.lower()}-{p}": Case(m, p, 403, "forbidden", who="patrol", json=j)
       for m, p, j in ADMIN_ONLY[:1]},
    **{f"admin-on-{m.lower()}-{p}": Case(m, p, 403, "forbidden", who="admin", json=j,
                                          headers={"Idempotency-Key": "k"})
       for m, p, j in VENDOR_ONLY},
    "patrol-on-bookings": Case("GET", "/v1/bookings", 403, "forbidden", who="patrol"),
    **{f"{who}-on-{m.lower()}-{p}": Case(m, p, status, code, who=who, json=j)
       for m, p, j in STAFF_ONLY
       for who, status, code in (("vendor", 403, "forbidden"), ("patrol", 403, "forbidden"),
                                 ("none", 401, "unauthorized"))},
    # routes and methods
    "unknown-route": Case("GET", "/v1/nothing-here", 404, "not_found", who="none"),
    "unknown-root": Case("GET", "/wp-admin.php", 404, "not_found", who="none"),
    "unknown-version": Case("GET", "/v2/markets", 404, "not_found", who="none"),
    "unknown-subresource": Case("POST", "/v1/markets/XZ-91/bribe", 404, "not_found"),
    "delete-markets": Case("DELETE", "/v1/markets", 405, "method_not_allowed", who="none"),
    "put-bookings": Case("PUT", "/v1/bookings", 405, "method_not_allowed", json=BOOKING),
    "patch-booking": Case("PATCH", "/v1/bookings/bk_0000000000000000", 405,
                          "method_not_allowed", json={"state": "checked_in"}),
    "get-token": Case("GET", "/v1/auth/token", 405, "method_not_allowed", who="none"),
    "get-check-in": Case("GET", "/v1/bookings/bk_0000000000000000/check-in", 405,
                         "method_not_allowed"),
}  # fmt: skip


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A 4xx problem+json with the code, a title and the matching status."""
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["title"]
    assert body["type"].endswith(f"/{code}")
    return body


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_bad_request_gets_a_problem(api: RunningAllocation, case: Case) -> None:
    token = token_for(api, case.who)
    headers = dict(case.headers)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with api.client() as c:
        response = await c.request(
            case.method,
            case.path,
            json=case.json,
            content=case.content,
            data=case.data,
            headers=headers,
        )
    assert_problem(response, case.status, case.code)
    if case.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_refused_requests_changed_nothing(api: RunningAllocation) -> None:
    """After the whole table: the stall code is intact and no booking or vendor appeared."""
    async with api.client(api.token("admin", Role.ADMIN)) as admin:
        code = await admin.get("/v1/admin/stalls/XZ-91-C001/code")
        availability = await admin.get(
            "/v1/markets/XZ-91/availability", params={"date": MONDAY.isoformat()}
        )
    assert code.status_code == 200
    assert code.json()["version"] == 1  # neither revoked nor re-issued by the refused calls
    window = availability.json()["windows"][0]
    assert window["booked"] == 0
    assert window["suspended_reason"] is None
    async with api.client() as c:
        login = await c.post(
            "/v1/auth/token",
            data={"username": REGISTRATION["phone"], "password": REGISTRATION["password"]},
        )
    assert_problem(login, 401, "invalid_credentials")


async def test_chunked_body_over_the_limit_is_refused(api: RunningAllocation) -> None:
    """A body without Content-Length (chunked) must meet the same 256 KiB limit."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"stall_id": "XZ-91-C001", "date": "2026-12-07", "window_id": "evening", "p": "'
        for _ in range(64):
            yield b"x" * (16 * KB)
        yield b'"}'

    async with api.client(api.token("vd_nobody")) as c:
        response = await c.post(
            "/v1/bookings", content=chunks(), headers={"Idempotency-Key": "k", **JSON}
        )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("accept_language", "english"),
    [
        pytest.param(None, False, id="default-zh"),
        pytest.param("en", True, id="en"),
        pytest.param("en-US,en;q=0.9", True, id="en-US"),
        pytest.param("zh-CN,zh;q=0.9,en;q=0.8", False, id="zh-preferred"),
        pytest.param("fr;q=0.9, en;q=0.5", False, id="french-falls-back-to-zh"),
        pytest.param("de;q=0.2, en;q=0.8", True, id="en-weighted"),
    ],
)
async def test_problem_language_follows_accept_language(
    api: RunningAllocation, accept_language: str | None, english: bool
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    async with api.client() as c:
        route = await c.get("/v1/nothing-here", headers=headers)
        market = await c.get("/v1/markets/ZZ-00", headers=headers)
    async with api.client(api.token("vd_nobody")) as c:
        window = await c.post(
            "/v1/bookings",
            json={**BOOKING, "window_id": "midnight"},
            headers={"Idempotency-Key": uuid.uuid4().hex, **headers},
        )
    expected = {
        route: ("Not found", "找不到该资源", "not_found", 404),
        market: ("Market not found", "找不到该市场", "market_not_found", 404),
        window: (
            "The market has no such window on that date",
            "该市场此日期没有这个时段",
            "window_not_found",
            404,
        ),
    }
    for response, (en, zh, code, status) in expected.items():
        body = assert_problem(response, status, code)
        assert body["title"] == (en if english else zh)
        assert response.headers["content-language"] == ("en" if english else "zh-CN")


async def test_token_expiry_follows_the_service_clock(api: RunningAllocation) -> None:
    """A token that expired an hour ago on the service clock is refused, even for an admin."""
    stale = dev_token(Role.ADMIN, "admin", now=api.clock.now() - timedelta(hours=2))
    async with api.client(stale) as c:
        response = await c.get("/v1/admin/stalls/XZ-91-C001/code")
    assert_problem(response, 401, "token_expired")
