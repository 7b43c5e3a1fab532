"""Evidence photos through the HTTP API on a real redis-server and a temporary folder:
upload, read back, one file per content, per-district access and refusals as problem+json."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspection.adapters.evidence import EvidenceError, EvidenceStore, require_evidence
from inspection.adapters.keys import Keys
from inspection.config import InspectionSettings
from inspection.entrypoints.http_evidence import evidence_router
from stallkit.auth import Role
from stallkit.service import ServiceParts, build_service
from stalltest.tokens import bearer, dev_token

pytestmark = pytest.mark.integration

Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
MAX_BYTES = 64 * 1024
PROBLEM = "application/problem+json"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(shade: int = 0) -> bytes:
    """A 2x2 greyscale PNG; ``shade`` makes different photos."""
    header = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + bytes([shade, shade]) + b"\x00" + bytes([shade, 255]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg() -> bytes:
    """A 1x1 baseline greyscale JPEG."""
    one_code = bytes([1] + [0] * 15) + b"\x00"
    return (
        b"\xff\xd8"
        + segment(0xDB, b"\x00" + bytes([1] * 64))
        + segment(0xC0, b"\x08\x00\x01\x00\x01\x01\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_code)
        + segment(0xC4, b"\x10" + one_code)
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + b"\x3f\xff\xd9"
    )


def staff(role: Role, district: str | None = None) -> dict[str, str]:
    return bearer(dev_token(role, f"{role.value}-{district or 'city'}", district=district))


PATROL_XZ = staff(Role.PATROL, "xiangzhou")
OFFICE_XZ = staff(Role.DISTRICT, "xiangzhou")
PATROL_JW = staff(Role.PATROL, "jinwan")
OFFICE_DM = staff(Role.DISTRICT, "doumen")
ADMIN = staff(Role.ADMIN)


@pytest.fixture
def settings(inspection_settings: InspectionSettings, tmp_path: Path) -> InspectionSettings:
    return inspection_settings.model_copy(
        update={"evidence_dir": tmp_path / "evidence", "evidence_max_bytes": MAX_BYTES}
    )


@pytest.fixture
async def service(
    settings: InspectionSettings, serve: Serve
) -> tuple[httpx.AsyncClient, EvidenceStore]:
    parts = ServiceParts.from_settings(settings)
    store = EvidenceStore(
        parts.redis,
        Keys(settings.redis_prefix),
        settings.evidence_dir,
        settings.evidence_max_bytes,
        clock=parts.clock,
    )
    app = build_service(
        parts,
        title="Evidence under test",
        description="The evidence routes alone.",
        routers=[evidence_router(store)],
        configure_logs=False,
    )
    return await serve(app), store


async def upload(
    client: httpx.AsyncClient, data: bytes, content_type: str, headers: dict[str, str], **kw: Any
) -> httpx.Response:
    return await client.post(
        "/v1/evidence", content=data, headers={**headers, "Content-Type": content_type}, **kw
    )


def stored_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def test_a_photo_is_stored_once_by_its_sha256_and_read_back_byte_for_byte(
    service: tuple[httpx.AsyncClient, EvidenceStore], settings: InspectionSettings
) -> None:
    client, store = service
    photo = png()
    sha = hashlib.sha256(photo).hexdigest()

    r = await upload(client, photo, "image/png", PATROL_XZ)
    assert r.status_code == 201, r.text
    url = f"/v1/evidence/{sha}"
    assert r.json() == {"sha256": sha, "size": len(photo), "content_type": "image/png", "url": url}
    assert r.headers["location"] == url
    assert stored_files(settings.evidence_dir) == [settings.evidence_dir / sha[:2] / sha]
    assert (settings.evidence_dir / sha[:2] / sha).read_bytes() == photo

    got = await client.get(url, headers=OFFICE_XZ)
    assert got.status_code == 200
    assert got.content == photo
    assert hashlib.sha256(got.content).hexdigest() == sha
    assert got.headers["content-type"] == "image/png"
    assert got.headers["etag"] == f'"{sha}"'
    again = await client.get(url, headers={**OFFICE_XZ, "If-None-Match": f'"{sha}"'})
    assert (again.status_code, again.content) == (304, b"")
    head = await client.head(url, headers=PATROL_XZ)
    assert (head.status_code, head.headers["etag"], head.content) == (200, f'"{sha}"', b"")

    # The same bytes again: the same answer, still one file.
    twice = await upload(client, photo, "image/png", PATROL_XZ)
    assert (twice.status_code, twice.json()) == (200, r.json())
    assert len(stored_files(settings.evidence_dir)) == 1

    # A JPEG works the same way.
    photo2 = jpeg()
    r2 = await upload(client, photo2, "image/jpeg", PATROL_XZ)
    assert r2.status_code == 201, r2.text
    got2 = await client.get(r2.json()["url"], headers=ADMIN)
    assert (got2.content, got2.headers["content-type"]) == (photo2, "image/jpeg")

    assert await store.exists(sha)
    assert not await store.exists(hashlib.sha256(b"other").hexdigest())
    meta = await store.meta(sha)
    assert meta is not None
    assert (meta.district, meta.districts, meta.uploader) == (
        "xiangzhou", frozenset({"xiangzhou"}), "patrol-xiangzhou",
    )  # fmt: skip


async def test_only_districts_that_uploaded_a_photo_may_read_or_cite_it(
    service: tuple[httpx.AsyncClient, EvidenceStore], settings: InspectionSettings
) -> None:
    client, store = service
    photo = png(7)
    sha = (await upload(client, photo, "image/png", PATROL_XZ)).json()["sha256"]
    url = f"/v1/evidence/{sha}"

    refused = await client.get(url, headers={**OFFICE_DM, "Accept-Language": "en"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith(PROBLEM)
    body = refused.json()
    assert body["code"] == "other_district"
    assert body["title"] == "Staff may only read or act on their own district"
    assert (await client.get(url, headers=PATROL_JW)).json()["code"] == "other_district"
    assert (await client.head(url, headers=PATROL_JW)).status_code == 403
    await require_evidence(store, [sha], "xiangzhou")
    with pytest.raises(EvidenceError) as caught:
        await require_evidence(store, [sha], "jinwan")
    assert (caught.value.code, caught.value.status) == ("other_district", 403)

    # Jinwan's patrol photographs the same thing: it may now read it too; Xiangzhou owns it.
    same = await upload(client, photo, "image/png", PATROL_JW)
    assert (same.status_code, same.json()["sha256"]) == (200, sha)
    assert (await client.get(url, headers=PATROL_JW)).content == photo
    await require_evidence(store, [sha, sha], "jinwan")
    meta = await store.meta(sha)
    assert meta is not None
    assert (meta.district, meta.districts) == ("xiangzhou", frozenset({"xiangzhou", "jinwan"}))
    assert (await client.get(url, headers=OFFICE_DM)).status_code == 403
    assert len(stored_files(settings.evidence_dir)) == 1

    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    missing = await client.get(f"/v1/evidence/{unknown}", headers=ADMIN)
    assert (missing.status_code, missing.json()["code"]) == (404, "evidence_not_found")
    assert missing.headers["content-type"].startswith(PROBLEM)
    with pytest.raises(EvidenceError) as caught:
        await require_evidence(store, [sha, unknown], "xiangzhou")
    assert (caught.value.code, caught.value.status) == ("evidence_not_found", 404)
    assert (await client.get("/v1/evidence/NOT-A-HASH", headers=ADMIN)).status_code == 422


async def test_who_may_upload_and_for_which_district(
    service: tuple[httpx.AsyncClient, EvidenceStore],
) -> None:
    client, _ = service
    vendor = bearer(dev_token(Role.VENDOR, "vd_abcdef", audience=["inspection"]))
    r = await upload(client, png(1), "image/png", vendor)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    assert (await upload(client, png(1), "image/png", {})).status_code == 401

    r = await upload(client, png(1), "image/png", ADMIN)
    assert (r.status_code, r.json()["code"]) == (422, "district_required")
    r = await upload(client, png(1), "image/png", ADMIN, params={"district": "doumen"})
    assert r.status_code == 201, r.text
    assert (await client.get(r.json()["url"], headers=OFFICE_DM)).status_code == 200
    assert (await client.get(r.json()["url"], headers=OFFICE_XZ)).status_code == 403

    r = await upload(client, png(2), "image/png", PATROL_XZ, params={"district": "doumen"})
    assert (r.status_code, r.json()["code"]) == (403, "other_district")


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_bad_files_are_refused_with_their_code_and_nothing_is_stored(
    service: tuple[httpx.AsyncClient, EvidenceStore], settings: InspectionSettings
) -> None:
    client, _ = service
    good = png(3)
    oversized = png(4)[:-12] + chunk(b"tEXt", b"x" * MAX_BYTES) + chunk(b"IEND", b"")
    cases: list[tuple[str, bytes, str, int, str]] = [
        ("truncated", good[:-5], "image/png", 422, "evidence_corrupt"),
        ("empty", b"", "image/png", 422, "evidence_corrupt"),
        ("wrong magic", b"MZ\x90\x00 not a photo", "image/jpeg", 422, "evidence_corrupt"),
        ("labelled as the other", jpeg(), "image/png", 415, "evidence_type_unsupported"),
        ("gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/jpeg", 415,
         "evidence_type_unsupported"),
        ("not an image type", good, "application/octet-stream", 415,
         "evidence_type_unsupported"),
        ("too large", oversized, "image/png", 413, "evidence_too_large"),
    ]  # fmt: skip
    for name, data, content_type, status, code in cases:
        r = await upload(client, data, content_type, PATROL_XZ)
        assert r.status_code == status, (name, r.text)
        assert r.headers["content-type"].startswith(PROBLEM), name
        assert r.json()["code"] == code, name

    # Streamed without a length, the upload is cut off once it passes the limit.
    r = await client.post(
        "/v1/evidence",
        content=chunks(oversized, 8 * 1024),
        headers={**PATROL_XZ, "Content-Type": "image/png"},
    )
    assert (r.status_code, r.json()["code"]) == (413, "evidence_too_large")
    english = await upload(client, good[:-5], "image/png", {**PATROL_XZ, "Accept-Language": "en"})
    assert english.json()["title"] == "The photo file is truncated or corrupt"
    assert "IEND" in english.json()["detail"]
    assert stored_files(settings.evidence_dir) == []

    # A photo streamed in small pieces arrives whole.
    r = await client.post(
        "/v1/evidence", content=chunks(good, 7), headers={**PATROL_XZ, "Content-Type": "image/png"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == hashlib.sha256(good).hexdigest()
