"""Registration: the phone proven with a texted code first, one account per identity, a taken
number never revealed, and registrations rate-limited per client address and per number."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from allocation.adapters.sms import HttpSmsGateway, SmsNotSent
from stalltest.allocation import (
    RunningAllocation,
    identity_number,
    register_vendor,
    serve_seeded,
    sms_code,
    sms_messages,
)
from stalltest.plugin import Isolation

pytestmark = pytest.mark.integration

PHONE = "13611112222"


def body(**changes: Any) -> dict[str, Any]:
    """A registration body (a fresh identity number unless given)."""
    return {
        "name": "陈小梅",
        "phone": PHONE,
        "password": "correct horse battery",
        "identity_number": identity_number(),
        "priority_group": "laid_off",
        "categories": ["daily_goods", "cooked_food"],
        "health_certificate_expires": "2027-06-30",
        **changes,
    }


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem body, asserting status, media type and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    found: dict[str, Any] = response.json()
    assert found["code"] == code, found
    return found


async def login(c: httpx.AsyncClient, phone: str, password: str) -> httpx.Response:
    """The OAuth2 password flow."""
    return await c.post("/v1/auth/token", data={"username": phone, "password": password})


async def test_the_account_exists_only_once_the_texted_code_is_given(
    svc: RunningAllocation,
) -> None:
    registration = body()
    async with svc.client() as c:
        started = await c.post("/v1/vendors", json=registration)
        assert started.status_code == 202, started.text
        assert set(started.json()) == {"registration_id", "expires_in"}
        assert started.json()["expires_in"] == 600
        before = await login(c, PHONE, registration["password"])
        (text,) = [m["text"] for m in sms_messages(svc.sms_outbox, PHONE)]
        code = sms_code(svc.sms_outbox, PHONE)
        verify = {"registration_id": started.json()["registration_id"], "code": code}
        created = await c.post("/v1/vendors/verify", json=verify)
        again = await c.post("/v1/vendors/verify", json=verify)
        after = await login(c, PHONE, registration["password"])
    problem(before, 401, "invalid_credentials")  # no account before the code
    assert re.search(rf"\b{code}\b", text)
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["phone_masked"] == "136****2222"
    # What was stated is claimed, and nothing counts until staff verify it.
    assert profile["priority_group"] == "none"
    assert profile["categories"] == []
    assert profile["health_certificate_expires"] is None
    claimed = {(c["kind"], c["value"]) for c in profile["claims"]}
    assert claimed == {
        ("priority_group", "laid_off"),
        ("category", "daily_goods"),
        ("category", "cooked_food"),
        ("health_certificate", "2027-06-30"),
    }
    assert {c["status"] for c in profile["claims"]} == {"claimed"}
    problem(again, 404, "registration_not_found")  # a code completes one registration once
    assert after.status_code == 200, after.text
    async with svc.client(after.json()["access_token"]) as c:
        me = await c.get("/v1/vendors/me")
    assert me.json()["id"] == profile["id"]
    assert me.json()["claims"] == profile["claims"]
    # The identity number is kept only as a salted digest.
    raw = await svc.allocation.vendors.redis.hgetall(svc.allocation.keys.vendor(profile["id"]))
    assert registration["identity_number"].encode() not in b"".join([*raw, *raw.values()])


async def test_one_account_per_identity(svc: RunningAllocation) -> None:
    person = identity_number()
    first = await svc.register(**body(identity_number=person))
    assert first.id
    async with svc.client() as c:
        second = await c.post("/v1/vendors", json=body(identity_number=person, phone="13611113333"))
        # Two registrations of one person, both pending: the second to complete is refused.
        other = identity_number()
        one = await c.post("/v1/vendors", json=body(identity_number=other, phone="13611114444"))
        two = await c.post("/v1/vendors", json=body(identity_number=other, phone="13611115555"))
        codes = [sms_code(svc.sms_outbox, p) for p in ("13611114444", "13611115555")]
        done = await c.post(
            "/v1/vendors/verify",
            json={"registration_id": one.json()["registration_id"], "code": codes[0]},
        )
        refused = await c.post(
            "/v1/vendors/verify",
            json={"registration_id": two.json()["registration_id"], "code": codes[1]},
        )
        loser = await login(c, "13611115555", "correct horse battery")
    problem(second, 409, "identity_taken")
    assert done.status_code == 201, done.text
    problem(refused, 409, "identity_taken")
    problem(loser, 401, "invalid_credentials")


class CountingHasher:
    """The service's password hasher, counting the hashes it makes."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.hashes = 0

    def hash(self, password: str) -> str:
        self.hashes += 1
        result: str = self.inner.hash(password)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_taken_number_answers_the_same_and_its_owner_is_told(
    svc: RunningAllocation,
) -> None:
    owner = await svc.register(**body())
    hasher = CountingHasher(svc.allocation.registrations.hasher)
    svc.allocation.registrations.hasher = hasher  # type: ignore[assignment]
    async with svc.client() as c:
        fresh = await c.post("/v1/vendors", json=body(phone="13611116666"))
        hashes_for_fresh = hasher.hashes
        taken = await c.post("/v1/vendors", json=body(name="冒名者", password="another-password"))
    assert hasher.hashes == 2 * hashes_for_fresh == 2  # the same work for both
    assert taken.status_code == fresh.status_code == 202
    assert taken.headers.keys() == fresh.headers.keys()
    assert set(taken.json()) == set(fresh.json())
    assert taken.json()["expires_in"] == fresh.json()["expires_in"]
    assert len(taken.json()["registration_id"]) == len(fresh.json()["registration_id"])

    texts = [m["text"] for m in sms_messages(svc.sms_outbox, PHONE)]
    assert len(texts) == 2  # the code of the owner's registration, then a notice
    assert "有人尝试用您的手机号注册" in texts[-1]
    assert "Someone tried to register your number" in texts[-1]
    assert not re.search(r"\b\d{6}\b", texts[-1])  # no code in a notice

    # No code completes it: the owner's old code, any other, until it is void.
    old_code = sms_code(svc.sms_outbox, "13611116666")  # a real code, of another registration
    attempts = svc.settings.registration_code_attempts
    registration_id = taken.json()["registration_id"]
    async with svc.client() as c:
        answers = [
            await c.post(
                "/v1/vendors/verify",
                json={"registration_id": registration_id, "code": code},
            )
            for code in [old_code, *(f"{n:06d}" for n in range(attempts))]
        ]
        still_owner = await login(c, PHONE, owner.password)
        impostor = await login(c, PHONE, "another-password")
    for answer, left in zip(answers, range(attempts - 1, -1, -1), strict=False):
        assert problem(answer, 422, "invalid_code")["attempts_left"] == left
    problem(answers[-1], 404, "registration_not_found")
    assert still_owner.status_code == 200
    problem(impostor, 401, "invalid_credentials")


async def test_wrong_codes_run_out_and_registrations_expire(svc: RunningAllocation) -> None:
    attempts = svc.settings.registration_code_attempts
    assert attempts == 5
    async with svc.client() as c:
        started = await c.post("/v1/vendors", json=body())
        registration_id = started.json()["registration_id"]
        code = sms_code(svc.sms_outbox, PHONE)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        answers = []
        for _ in range(attempts):
            answers.append(
                await c.post(
                    "/v1/vendors/verify", json={"registration_id": registration_id, "code": wrong}
                )
            )
        right_too_late = await c.post(
            "/v1/vendors/verify", json={"registration_id": registration_id, "code": code}
        )
    lefts = [problem(a, 422, "invalid_code")["attempts_left"] for a in answers]
    assert lefts == [4, 3, 2, 1, 0]
    problem(right_too_late, 404, "registration_not_found")  # void after the fifth

    # A registration lives 10 minutes (Redis expires it).
    async with svc.client() as c:
        started = await c.post("/v1/vendors", json=body(phone="13611117777"))
        registration_id = started.json()["registration_id"]
        key = svc.allocation.keys.registration(registration_id)
        ttl = await svc.allocation.vendors.redis.ttl(key)
        assert 590 <= ttl <= 600
        await svc.allocation.vendors.redis.delete(key)  # as if 10 minutes had passed
        expired = await c.post(
            "/v1/vendors/verify",
            json={
                "registration_id": registration_id,
                "code": sms_code(svc.sms_outbox, "13611117777"),
            },
        )
    problem(expired, 404, "registration_not_found")


async def test_registrations_are_rate_limited_per_address_and_per_number(
    isolation: Isolation,
) -> None:
    async with serve_seeded(
        isolation, registrations_per_address=3, registrations_per_phone=2
    ) as api:
        async with api.client() as c:
            same_number = [await c.post("/v1/vendors", json=body()) for _ in range(3)]
            other_number = await c.post("/v1/vendors", json=body(phone="13611118888"))
            beyond = await c.post("/v1/vendors", json=body(phone="13611119999"))
            bad = await c.post("/v1/vendors", json=body(identity_number="440402199001011237"))
        assert [r.status_code for r in same_number[:2]] == [202, 202]
        refused = problem(same_number[2], 429, "too_many_registrations")  # 2 per number
        assert 3500 < int(same_number[2].headers["retry-after"]) <= 3600
        assert refused["retry_after_seconds"] > 0
        assert len(sms_messages(api.sms_outbox, PHONE)) == 2  # no text for the refused one
        assert other_number.status_code == 202  # the address's third
        problem(beyond, 429, "too_many_registrations")  # the address's fourth
        assert "retry-after" in beyond.headers
        problem(bad, 422, "validation_failed")  # refused before it is counted
        assert not sms_messages(api.sms_outbox, "13611119999")


async def test_one_client_trying_500_accounts_in_10_seconds_gets_ten_texts_and_no_account(
    svc: RunningAllocation,
) -> None:
    """The attack of the issue, with the default limits: 500 registrations from one address, each
    with its own number and identity number, as fast as the client can send them."""
    attempts = [
        body(phone=f"139{n:08d}", identity_number=identity_number(900_000 + n)) for n in range(500)
    ]
    async with svc.client() as c:
        answers = await asyncio.gather(*(c.post("/v1/vendors", json=a) for a in attempts))
        logins = [await login(c, a["phone"], a["password"]) for a in attempts[:20]]
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {202: 10, 429: 490}  # ten an hour per address (the default)
    assert {r.json()["code"] for r in answers if r.status_code == 429} == {"too_many_registrations"}
    texted = [a["phone"] for a in attempts if sms_messages(svc.sms_outbox, a["phone"])]
    assert len(texted) == 10  # one text per registration let through, none for the refused
    # Without the texted codes (numbers the attacker does not hold) no account exists at all.
    assert {r.status_code for r in logins} == {401}
    assert not await svc.allocation.vendors.redis.keys(svc.allocation.keys.vendor("*"))


async def test_the_registration_helper_registers_over_http(svc: RunningAllocation) -> None:
    async with svc.client() as c:
        vendor = await register_vendor(
            c, svc.sms_outbox, name="李师傅", phone="13611110000", password="right-password",
            categories=["services"],
        )  # fmt: skip
    assert vendor.profile["claims"][0]["value"] == "services"
    async with svc.client(vendor.token) as c:
        assert (await c.get("/v1/vendors/me")).json()["id"] == vendor.id


# --- the production SMS gateway -------------------------------------------------------------


class _Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str | None, dict[str, Any]]]] = []
    status: ClassVar[int] = 202

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Gateway.received.append(
            (self.headers["Authorization"], json.loads(self.rfile.read(length)))
        )
        self.send_response(_Gateway.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    """A local SMS gateway (loopback only)."""
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/send"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_http_gateway_posts_json_with_its_token(gateway: str) -> None:
    _Gateway.received.clear()
    _Gateway.status = 202
    await HttpSmsGateway(gateway, "t0ken").send("13800138000", "验证码 042917")
    assert _Gateway.received == [
        ("Bearer t0ken", {"phone": "13800138000", "text": "验证码 042917"})
    ]
    _Gateway.status = 500
    with pytest.raises(SmsNotSent, match="500"):
        await HttpSmsGateway(gateway, "t0ken").send("13800138000", "x")
    with pytest.raises(SmsNotSent):
        await HttpSmsGateway("http://127.0.0.1:9/send", "t0ken", timeout_seconds=1).send("1", "x")
    with pytest.raises(ValueError, match="http"):
        HttpSmsGateway("file:///etc/passwd", "t0ken")
