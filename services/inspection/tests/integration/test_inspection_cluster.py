"""The inspection service configured with a Redis Cluster URL: scans against the projected
bookings, their warnings and cases, the district's record and the events on Kafka."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from contracts.envelope import RawEnvelope
from contracts.topics import INSPECTION
from inspection.config import InspectionSettings
from stalltest.inspection import (
    MARKET,
    OFFICE,
    PATROL,
    Eventually,
    Serve,
    code,
    scene_settings,
    start_inspection,
)
from stalltest.plugin import RedisClusterInfo

pytestmark = pytest.mark.integration


async def test_scans_on_a_cluster_judge_the_projected_bookings(
    inspection_settings: InspectionSettings,
    redis_cluster: RedisClusterInfo,
    tmp_path: Path,
    serve: Serve,
    publisher: KafkaBroker,
    eventually: Eventually,
    topic_reader: Callable[[str], Any],
) -> None:
    clustered = inspection_settings.model_copy(update={"redis_url": redis_cluster.cluster_url})
    settings = await scene_settings(clustered, tmp_path / "evidence")
    reader = await topic_reader(settings.topic(INSPECTION.name))
    client = await start_inspection(settings, serve, publisher, eventually)

    async def scan(key: str, status: int = 201, **body: Any) -> dict[str, Any]:
        r = await client.post("/v1/scans", json=body, headers={**PATROL, "Idempotency-Key": key})
        assert r.status_code == status, r.text
        answer: dict[str, Any] = r.json()
        return answer

    booked = await scan("c1", code=code(f"{MARKET}-A001"), occupied=True, vendor_id="vd_alice")
    vacant = await scan("c2", code=code(f"{MARKET}-A002"), occupied=False)
    warned = await scan("c3", code=code(f"{MARKET}-A001"), occupied=True, vendor_id="vd_alice",
                        violations=["litter"])  # fmt: skip
    cased = await scan("c4", code=code(f"{MARKET}-A001"), occupied=True, vendor_id="vd_alice",
                       violations=["noise"])  # fmt: skip
    again = await scan("c4", 200, code=code(f"{MARKET}-A001"), occupied=True,
                       vendor_id="vd_alice", violations=["noise"])  # fmt: skip

    assert (booked["outcome"], vacant["outcome"]) == ("compliant", "booked_but_vacant")
    assert vacant["expected"]["vendor_id"] == "vd_bob"
    assert [w["violation"] for w in warned["warnings"]] == ["litter"]
    [case] = cased["cases"]
    assert again == cased  # the retried scan is answered the same, recorded once
    listed = await client.get("/v1/cases?district=xiangzhou", headers=OFFICE)
    assert [c["case_id"] for c in listed.json()["items"]] == [case["case_id"]]
    verdict = await client.get("/v1/record/verify?district=xiangzhou", headers=OFFICE)
    assert verdict.json()["valid"] is True
    assert verdict.json()["entries"] >= 5  # four scans and a case

    def types(records: list[Any]) -> list[str]:
        return [RawEnvelope.from_bytes(r.value).type for r in records]

    records = await reader.collect_until(lambda rs: any("case" in t for t in types(rs)))
    assert any("case" in t for t in types(records)), types(records)
    assert (await client.get("/readyz")).status_code == 200
