"""Evidence photos: validated JPEG/PNG bytes stored by their SHA-256, metadata in Redis.

A photo's file is ``<folder>/<first 2 hex>/<sha256>``, written once (temporary file, fsync,
``os.replace``), so the same bytes uploaded twice are one file. Its metadata is one Redis hash
(``Keys.evidence``): size, content type, the district that uploaded it first (its owner) and one
``d:<district>`` field for every district that uploaded the same bytes; staff of those
districts may read it and refer to it from their scans and cases.

The format check reads structure, not pixels (no image library): a PNG must be its signature,
an IHDR with sane dimensions, chunks with good CRCs and a final IEND; a JPEG must run from SOI
through well-formed segments with a frame header (SOF) and a scan to EOI.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from inspection.adapters.keys import Keys
from stallkit.clock import Clock
from stallkit.problems import ProblemError, register_messages
from stallkit.redis_client import RedisClient

PNG = "image/png"
JPEG = "image/jpeg"
SUPPORTED_TYPES = frozenset({PNG, JPEG})
#: Largest width or height accepted (a 50-megapixel phone photo is about 8200 x 6100).
MAX_SIDE = 20_000
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)
_DISTRICT_FIELD = "d:"

register_messages(
    {
        "evidence_too_large": ("照片文件过大", "The photo is too large"),
        "evidence_type_unsupported": (
            "只接受 JPEG 或 PNG 照片，且类型须与文件内容一致",
            "Only JPEG or PNG photos are accepted, labelled as what they are",
        ),
        "evidence_corrupt": ("照片文件不完整或已损坏", "The photo file is truncated or corrupt"),
        "evidence_not_found": ("找不到该证据照片", "Evidence photo not found"),
        # Same text as the enforcement routes' code of the same name.
    }
)


class EvidenceError(ProblemError):
    """A refused or missing photo, with a stable code (problem+json by the shared handler)."""


def too_large(max_bytes: int) -> EvidenceError:
    """The photo is over ``max_bytes``."""
    return EvidenceError(
        "evidence_too_large", 413, f"a photo may be at most {max_bytes} bytes", max_bytes=max_bytes
    )


def unsupported(detail: str, detected: str | None = None) -> EvidenceError:
    """Not a JPEG or PNG, or labelled as the other one."""
    extra = {"detected": detected} if detected else {}
    return EvidenceError("evidence_type_unsupported", 415, detail, **extra)


def corrupt(detail: str) -> EvidenceError:
    """The bytes are not a whole, well-formed image of their type."""
    return EvidenceError("evidence_corrupt", 422, detail)


def media_type(content_type: str) -> str:
    """The bare, lower-case media type of a Content-Type header (``image/png; x=y`` -> png)."""
    return content_type.split(";", 1)[0].strip().lower()


# Signatures of image formats people send instead of JPEG/PNG: named in the 415 answer.
_OTHER_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (8, b"WEBP", "image/webp"),
    (4, b"ftypheic", "image/heic"),
    (4, b"ftypheix", "image/heic"),
    (4, b"ftypmif1", "image/heif"),
    (4, b"ftypavif", "image/avif"),
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"


def sniff(data: bytes) -> str | None:
    """The image type the first bytes announce, or None if they announce none known."""
    if data.startswith(PNG_SIGNATURE):
        return PNG
    if data.startswith(JPEG_SOI):
        return JPEG
    for offset, magic, name in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            return name
    return None


def _side(name: str, value: int) -> None:
    if not 1 <= value <= MAX_SIDE:
        raise corrupt(f"{name} {value} is not between 1 and {MAX_SIDE} pixels")


# PNG colour type -> allowed bit depths.
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


def check_png(data: bytes) -> tuple[int, int]:
    """Width and height of a whole, well-formed PNG; ``evidence_corrupt`` otherwise."""
    if not data.startswith(PNG_SIGNATURE):
        raise corrupt("no PNG signature")
    pos, end = len(PNG_SIGNATURE), len(data)
    size: tuple[int, int] | None = None
    has_image_data = False
    while True:
        if pos + 12 > end:
            raise corrupt("PNG ends before its IEND chunk")
        length, kind = struct.unpack_from(">I4s", data, pos)
        body_at, crc_at = pos + 8, pos + 8 + length
        if length > 0x7FFFFFFF or crc_at + 4 > end:
            raise corrupt(f"PNG chunk at byte {pos} runs past the end of the file")
        if not kind.isalpha():
            raise corrupt(f"PNG chunk at byte {pos} has no valid type")
        (crc,) = struct.unpack_from(">I", data, crc_at)
        if zlib.crc32(data[pos + 4 : crc_at]) != crc:
            raise corrupt(f"PNG chunk {kind.decode()} has a bad CRC")
        if size is None:
            if kind != b"IHDR" or length != 13:
                raise corrupt("PNG does not start with an IHDR chunk")
            width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(
                ">IIBBBBB", data, body_at
            )
            _side("width", width)
            _side("height", height)
            if depth not in _PNG_DEPTHS.get(colour, set()):
                raise corrupt(f"PNG bit depth {depth} with colour type {colour}")
            if compression != 0 or filtering != 0 or interlace not in (0, 1):
                raise corrupt("PNG header names an unknown method")
            size = (width, height)
        elif kind == b"IHDR":
            raise corrupt("PNG has a second IHDR chunk")
        elif kind == b"IDAT":
            has_image_data = True
        elif kind == b"IEND":
            if not has_image_data:
                raise corrupt("PNG has no image data (IDAT)")
            if crc_at + 4 != end:
                raise corrupt("PNG has bytes after its IEND chunk")
            return size
        pos = crc_at + 4


# Frame headers: SOF0-3, 5-7, 9-11, 13-15 (C4 is DHT, C8 reserved, CC is DAC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA


def _after_scan(data: bytes, pos: int) -> int:
    """Index of the marker (its 0xFF) that ends the entropy-coded data starting at ``pos``."""
    end = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= end:
            raise corrupt("JPEG ends inside its image data, before EOI")
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte, restart marker
            pos += 2
        elif following == 0xFF:  # fill byte before a marker
            pos += 1
        else:
            return pos


def check_jpeg(data: bytes) -> tuple[int, int]:
    """Width and height of a whole, well-formed JPEG; ``evidence_corrupt`` otherwise.

    Bytes after EOI are allowed: some phones append their own data there.
    """
    if not data.startswith(JPEG_SOI):
        raise corrupt("no JPEG start-of-image marker")
    pos, end = 2, len(data)
    size: tuple[int, int] | None = None
    scanned = False
    while True:
        if pos >= end or data[pos] != 0xFF:
            raise corrupt(f"JPEG has no marker at byte {pos} (truncated or damaged)")
        while pos < end and data[pos] == 0xFF:  # a marker may be preceded by fill bytes
            pos += 1
        if pos >= end:
            raise corrupt("JPEG ends before EOI")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            if size is None or not scanned:
                raise corrupt("JPEG has no frame header (SOF) or no scan")
            return size
        if marker in _STANDALONE:
            continue
        if marker in (0x00, _SOI):
            raise corrupt(f"JPEG has a stray marker 0x{marker:02X} at byte {pos - 1}")
        if pos + 2 > end:
            raise corrupt("JPEG ends inside a segment header")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > end:
            raise corrupt(f"JPEG segment 0x{marker:02X} runs past the end of the file")
        if marker in _SOF:
            if size is not None:
                raise corrupt("JPEG has a second frame header")
            if length < 8:
                raise corrupt("JPEG frame header is too short")
            height, width, components = struct.unpack_from(">HHB", data, pos + 3)
            _side("width", width)
            _side("height", height)
            if components not in (1, 3, 4) or length != 8 + 3 * components:
                raise corrupt("JPEG frame header has a bad component count")
            size = (width, height)
        pos += length
        if marker == _SOS:
            if size is None:
                raise corrupt("JPEG scan before its frame header")
            scanned = True
            pos = _after_scan(data, pos)


def check_photo(data: bytes, content_type: str, max_bytes: int) -> str:
    """The photo's media type if ``data`` is a whole JPEG or PNG labelled ``content_type``.

    Raises ``evidence_type_unsupported`` (415), ``evidence_too_large`` (413) or
    ``evidence_corrupt`` (422).
    """
    declared = media_type(content_type)
    if declared not in SUPPORTED_TYPES:
        raise unsupported(f"{declared or 'no content type'} is not image/jpeg or image/png")
    if not data:
        raise corrupt("the file is empty")
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    detected = sniff(data)
    if detected is None:
        raise corrupt(f"the bytes are not a {declared} file")
    if detected != declared:
        raise unsupported(f"the bytes are {detected}, not {declared}", detected)
    if detected == PNG:
        check_png(data)
    else:
        check_jpeg(data)
    return detected


@dataclass(frozen=True)
class StoredEvidence:
    """A stored photo's metadata."""

    sha256: str
    size: int
    content_type: str
    district: str  # the district that uploaded it first
    uploaded_at: datetime
    uploader: str = ""
    districts: frozenset[str] = field(default_factory=frozenset)  # all that uploaded it

    def readable_by(self, district: str | None) -> bool:
        """True if staff of ``district`` may see and cite the photo."""
        return district is not None and district in self.districts


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_hash(raw: dict[Any, Any]) -> StoredEvidence | None:
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}
    districts = {k[len(_DISTRICT_FIELD) :] for k in fields if k.startswith(_DISTRICT_FIELD)}
    return StoredEvidence(
        sha256=fields["sha256"],
        size=int(fields["size"]),
        content_type=fields["content_type"],
        district=fields["district"],
        uploaded_at=datetime.fromisoformat(fields["uploaded_at"]),
        uploader=fields.get("uploader", ""),
        districts=frozenset(districts | {fields["district"]}),
    )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_once(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically and durably, unless it is already there."""
    if target.is_file() and target.stat().st_size == len(data):
        return  # content-addressed: same name and size is the same photo
    shard, root = target.parent, target.parent.parent
    new_shard = not shard.is_dir()
    shard.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=shard, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(shard)  # the rename itself survives a crash
    if new_shard:
        _fsync_dir(root)


class EvidenceStore:
    """Photos on disk by SHA-256, their metadata and readers' districts in Redis."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        folder: Path,
        max_bytes: int,
        *,
        clock: Clock | None = None,
    ):
        self.redis = redis
        self.keys = keys
        self.folder = folder
        self.max_bytes = max_bytes
        self.clock = clock or Clock()

    def path(self, sha256: str) -> Path:
        """Where the photo with this SHA-256 (lower-case hex) is kept."""
        if not _SHA256.match(sha256):
            raise ValueError("not a lower-case hex SHA-256")
        return self.folder / sha256[:2] / sha256

    async def upload(
        self, data: bytes, content_type: str, *, district: str, uploader: str
    ) -> tuple[StoredEvidence, bool]:
        """Check and store a photo for ``district``; also whether the bytes were new."""
        canonical = check_photo(data, content_type, self.max_bytes)
        sha256 = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(write_once, self.path(sha256), data)
        # File before metadata: metadata never names a photo that is not on disk.
        now = self.clock.now().isoformat()
        key = self.keys.evidence(sha256)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "sha256", sha256)
            for name, value in (
                ("size", str(len(data))),
                ("content_type", canonical),
                ("district", district),
                ("uploaded_at", now),
                ("uploader", uploader),
                (_DISTRICT_FIELD + district, now),
            ):
                pipe.hsetnx(key, name, value)
            pipe.hgetall(key)
            results = await pipe.execute()
        stored = _from_hash(results[-1])
        assert stored is not None  # written just above, in the same transaction
        return stored, bool(results[0])

    async def put(
        self, data: bytes, content_type: str, *, district: str, uploader: str
    ) -> StoredEvidence:
        """Check and store a photo uploaded by ``uploader`` of ``district``; its metadata."""
        stored, _ = await self.upload(data, content_type, district=district, uploader=uploader)
        return stored

    async def meta(self, sha256: str) -> StoredEvidence | None:
        """The photo's metadata, or None if it was never stored."""
        if not _SHA256.match(sha256):
            return None
        return _from_hash(await self.redis.hgetall(self.keys.evidence(sha256)))

    async def exists(self, sha256: str) -> bool:
        """True if the photo's metadata and file are both there."""
        if not _SHA256.match(sha256) or not await self.redis.exists(self.keys.evidence(sha256)):
            return False
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def readable(self, sha256: str, district: str | None) -> StoredEvidence:
        """The photo's metadata if ``district`` may read it (None: an administrator).

        Raises ``evidence_not_found`` (404) or ``other_district`` (403).
        """
        stored = await self.meta(sha256)
        if stored is None:
            raise EvidenceError("evidence_not_found", 404, sha256=sha256)
        if district is not None and not stored.readable_by(district):
            raise EvidenceError("other_district", 403, sha256=sha256)
        return stored

    async def require(self, sha256s: Sequence[str], district: str) -> None:
        """Every photo in ``sha256s`` exists and ``district`` may cite it; else 404 / 403."""
        wanted = list(dict.fromkeys(sha256s))
        if not wanted:
            return
        for sha256 in wanted:
            if not _SHA256.match(sha256):
                raise EvidenceError("evidence_not_found", 404, sha256=sha256)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sha256 in wanted:
                pipe.hgetall(self.keys.evidence(sha256))
            found = await pipe.execute()
        for sha256, raw in zip(wanted, found, strict=True):
            stored = _from_hash(raw)
            if stored is None:
                raise EvidenceError("evidence_not_found", 404, sha256=sha256)
            if not stored.readable_by(district):
                raise EvidenceError("other_district", 403, sha256=sha256)


async def require_evidence(store: EvidenceStore, sha256s: Sequence[str], district: str) -> None:
    """Every referenced photo exists and ``district`` may cite it; 404 / 403 problems if not."""
    await store.require(sha256s, district)
