"""Scans on the running service (real broker and Redis): one outcome each, codes that must be
refused, offline scans judged at their observation time, phones' retries, "1+1"."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker

from contracts.events import StallCodeIssued, StallCodeRevoked
from inspection.config import InspectionSettings
from stalltest.inspection import (
    ADMIN,
    FRIDAY,
    MARKET,
    NOW,
    OTHER,
    OTHER_PATROL,
    PATROL,
    Eventually,
    Serve,
    code,
    local,
    publish_all,
    scene_settings,
    start_inspection,
)

pytestmark = pytest.mark.integration

_keys = iter(range(1, 1_000_000))


@pytest.fixture
async def settings(inspection_settings: InspectionSettings, tmp_path: Path) -> InspectionSettings:
    return await scene_settings(inspection_settings, tmp_path / "evidence")


@pytest.fixture
async def client(
    settings: InspectionSettings, serve: Serve, publisher: KafkaBroker, eventually: Eventually
) -> httpx.AsyncClient:
    return await start_inspection(settings, serve, publisher, eventually)


async def scan(
    client: httpx.AsyncClient, headers: dict[str, str] = PATROL, key: str | None = None, **body: Any
) -> httpx.Response:
    body.setdefault("occupied", False)
    return await client.post(
        "/v1/scans",
        json=body,
        headers={**headers, "Idempotency-Key": key or f"k-{next(_keys)}"},
    )


async def everything_stored(redis: Any, prefix: str) -> bytes:
    """Every key and value under ``prefix``, concatenated."""
    out = b""
    async for key in redis.scan_iter(match=f"{prefix}*"):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            values = [await redis.get(key)]
        elif kind == "list":
            values = await redis.lrange(key, 0, -1)
        elif kind == "hash":
            values = [b"%s=%s" % kv for kv in (await redis.hgetall(key)).items()]
        elif kind == "zset":
            values = await redis.zrange(key, 0, -1)
        elif kind == "set":
            values = list(await redis.smembers(key))
        else:  # streams (the outbox)
            values = [repr(await redis.xrange(key)).encode()]
        out += key + b"\n" + b"\n".join(values) + b"\n"
    return out


def stall(n: int, market: str = MARKET) -> str:
    return f"{market}-A{n:03d}"


async def test_each_outcome_of_a_scan(client: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"code": code(stall(1)), "occupied": True, "vendor_id": "vd_alice"}, "compliant"),
        ({"code": code(stall(2))}, "booked_but_vacant"),
        (
            {"code": code(stall(3)), "occupied": True, "vendor_id": "vd_carol"},
            "occupied_without_booking",
        ),
        ({"code": code(stall(4))}, "compliant"),  # free and empty: nothing wrong
        ({"code": code(stall(2)), "occupied": True, "vendor_id": "vd_dave"}, "wrong_vendor"),
        (
            {"code": code(stall(5)), "occupied": True, "vendor_id": "vd_erin",
             "observed_at": local(FRIDAY, 17, 10).isoformat()},
            "overtime",
        ),
        ({"code": "https://pay.example.com/qr/123", "stall_id": stall(6)}, "invalid_code"),
        ({"code": code(stall(1)), "stall_id": stall(6)}, "invalid_code"),  # another stall's code
    ]  # fmt: skip
    for body, outcome in cases:
        r = await scan(client, **body)
        assert r.status_code == 201, r.text
        assert r.json()["outcome"] == outcome, (body, r.json())
    # The booked vendor is named in the answer, so the patrol sees who should be there.
    r = await scan(client, code=code(stall(2)), occupied=True, vendor_id="vd_frank")
    assert r.json()["expected"] == {"booking_id": f"bk_{stall(2)}_evening_2026-11-20",
                                    "vendor_id": "vd_bob"}  # fmt: skip
    assert r.json()["window"]["window_id"] == "evening"


async def test_forged_altered_and_revoked_codes_are_refused(
    client: httpx.AsyncClient, settings: InspectionSettings, publisher: KafkaBroker,
    eventually: Eventually,
) -> None:  # fmt: skip
    genuine = code(stall(1))
    prefix, stall_id, version, signature = genuine.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    forged = f"{prefix}.{stall_id}.{version}.{flipped}"
    moved = f"{prefix}.{stall(3)}.{version}.{signature}"  # another stall's id, the same signature
    bumped = f"{prefix}.{stall_id}.7.{signature}"
    for text in (forged, moved, bumped):
        r = await scan(client, code=text)
        assert r.status_code == 201, r.text
        assert (r.json()["outcome"], r.json()["code_check"]) == ("forged_code", "forged")
    # A code too mangled to name its stall needs the stall id from the patrol.
    r = await scan(client, code="ZHSC1-garbage")
    assert (r.status_code, r.json()["code"]) == (422, "stall_id_required")

    await publish_all(publisher, settings, [
        StallCodeRevoked(market_id=MARKET, stall_id=stall(4), code_version=1),
        StallCodeIssued(market_id=MARKET, stall_id=stall(5), code_version=2),
    ])  # fmt: skip

    async def revoked() -> bool:
        r4 = await scan(client, code=code(stall(4)))
        r5 = await scan(client, code=code(stall(5), 1))
        return bool(r4.json()["outcome"] == r5.json()["outcome"] == "revoked_code")

    await eventually(revoked)
    assert (await scan(client, code=code(stall(4)))).json()["code_check"] == "revoked"
    assert (await scan(client, code=code(stall(5), 1))).json()["code_check"] == "superseded"
    assert (await scan(client, code=code(stall(5), 2))).json()["outcome"] == "compliant"


async def test_an_offline_scan_is_judged_at_its_observation_time(client: httpx.AsyncClient) -> None:
    # Seen at 17:10, before the evening window: vending then was overtime, although the
    # window is open now that the phone is back online.
    r = await scan(
        client, code=code(stall(1)), occupied=True, vendor_id="vd_alice",
        observed_at=local(FRIDAY, 17, 10).isoformat(),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["outcome"] == "overtime"
    assert r.json()["late_by_seconds"] == pytest.approx(50 * 60, abs=120)
    # Seen at 17:45: the booked vendor was there.
    r = await scan(
        client, code=code(stall(1)), occupied=True, vendor_id="vd_alice",
        observed_at=local(FRIDAY, 17, 45).isoformat(),
    )  # fmt: skip
    assert r.json()["outcome"] == "compliant"
    too_old = (NOW - timedelta(hours=25)).isoformat()
    r = await scan(client, code=code(stall(1)), observed_at=too_old)
    assert (r.status_code, r.json()["code"]) == (422, "scan_too_late")
    future = (NOW + timedelta(hours=1)).isoformat()
    r = await scan(client, code=code(stall(1)), observed_at=future)
    assert (r.status_code, r.json()["code"]) == (422, "observed_in_future")


async def test_a_retried_scan_is_recorded_once_and_answered_the_same(
    client: httpx.AsyncClient,
) -> None:
    body: dict[str, Any] = {"code": code(stall(3)), "occupied": True, "vendor_id": "vd_gina"}
    first = await scan(client, key="phone-1-scan-9", **body)
    again = await scan(client, key="phone-1-scan-9", **body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(first.json()["warnings"]) == 1  # one warning, not two
    r = await scan(client, key="phone-1-scan-9", **{**body, "vendor_id": "vd_hank"})
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")
    r = await client.post("/v1/scans", json=body, headers=PATROL)
    assert (r.status_code, r.json()["code"]) == (400, "idempotency_key_required")


async def test_one_plus_one_warns_first_then_opens_a_case(client: httpx.AsyncClient) -> None:
    first = await scan(client, code=code(stall(1)), occupied=True, vendor_id="vd_alice",
                       violations=["litter"])  # fmt: skip
    assert first.json()["outcome"] == "compliant"
    assert [w["violation"] for w in first.json()["warnings"]] == ["litter"]
    assert first.json()["cases"] == []
    second = await scan(client, code=code(stall(1)), occupied=True, vendor_id="vd_alice",
                        violations=["noise"])  # fmt: skip
    assert second.json()["warnings"] == []
    [case] = second.json()["cases"]
    assert (case["violation"], case["state"], case["subject_id"]) == (
        "noise",
        "reported",
        "vd_alice",
    )
    assert (case["penalty_min_cny"], case["penalty_max_cny"]) == (0, 200)
    # Off the exemption list: a case at once, even for a clean subject.
    r = await scan(client, code=code(stall(4)), occupied=True, vendor_id="vd_ivan",
                   violations=["cooking_fumes"])  # fmt: skip
    assert [w["violation"] for w in r.json()["warnings"]] == ["unbooked_stall_use"]
    assert [c["violation"] for c in r.json()["cases"]] == ["cooking_fumes"]
    # Passing a stall on is not on the list either.
    r = await scan(client, code=code(stall(2)), occupied=True, vendor_id="vd_judy")
    assert r.json()["outcome"] == "wrong_vendor"
    assert [c["violation"] for c in r.json()["cases"]] == ["stall_transfer"]


async def test_a_street_vendor_without_an_account_is_known_only_by_a_hash(
    client: httpx.AsyncClient, redis_client: Any, settings: InspectionSettings
) -> None:
    number = "44040219900101123X"
    r = await scan(client, code=code(stall(3)), occupied=True, identity_number=number)
    assert r.status_code == 201, r.text
    subject = r.json()["subject_id"]
    assert subject.startswith("id_")
    assert number not in r.text
    assert [w["violation"] for w in r.json()["warnings"]] == ["unbooked_stall_use"]
    r = await scan(
        client, code=code(stall(3)), occupied=True, identity_number="440402 19900101 123x"
    )
    assert r.json()["subject_id"] == subject
    assert [c["violation"] for c in r.json()["cases"]] == ["unbooked_stall_use"]  # a repeat
    stored = await everything_stored(redis_client, settings.redis_prefix)
    assert stored
    assert b"19900101" not in stored
    r = await scan(client, code=code(stall(3)), occupied=True)
    assert (r.status_code, r.json()["code"]) == (422, "who_required")


async def test_a_patrol_scans_only_in_its_own_district(client: httpx.AsyncClient) -> None:
    r = await scan(client, headers=OTHER_PATROL, code=code(stall(1)))
    assert (r.status_code, r.json()["code"]) == (403, "other_district")
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await scan(client, headers=ADMIN, code=code(stall(1)))
    assert r.status_code == 201
    r = await scan(client, headers=PATROL, code=code(stall(1, OTHER)))
    assert r.status_code == 403


async def test_a_street_report_guides_to_the_nearest_markets_with_free_stalls(
    client: httpx.AsyncClient,
) -> None:
    near_xz = {"lat": 22.2712, "lon": 113.5771}  # a few dozen metres from XZ-07
    r = await client.post(
        "/v1/street-reports",
        json={"location": near_xz, "category": "cooked_food", "vendor_id": "vd_kate"},
        headers=PATROL,
    )
    assert r.status_code == 201, r.text
    [guide] = r.json()["markets"]  # DM-02 is 29 km away, beyond the 5 km radius
    assert (guide["market_id"], guide["free_stalls"], guide["window_id"]) == (MARKET, 1, "evening")
    assert guide["distance_km"] < 0.1
    assert guide["open_now"] is True
    assert [w["violation"] for w in r.json()["warnings"]] == ["street_vending"]
    r = await client.post(
        "/v1/street-reports",
        json={"location": near_xz, "category": "daily_goods"},
        headers=PATROL,
    )
    assert r.json()["markets"][0]["free_stalls"] == 3
    assert r.json()["warnings"] == []
    assert r.json()["subject_id"] is None
    # Near Doumen's market, for a Doumen patrol.
    near_dm = {"lat": 22.2095, "lon": 113.2975}
    r = await client.post("/v1/street-reports", json={"location": near_dm}, headers=OTHER_PATROL)
    assert [m["market_id"] for m in r.json()["markets"]] == [OTHER]
    assert r.json()["markets"][0]["free_stalls"] == 5  # six stalls, one booked
    bad = await client.post(
        "/v1/street-reports", json={"location": {"lat": 95, "lon": 0}}, headers=PATROL
    )
    assert bad.status_code == 422
