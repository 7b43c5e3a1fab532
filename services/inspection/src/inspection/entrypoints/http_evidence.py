"""HTTP routes of evidence photos: upload raw JPEG/PNG bytes, read them back by SHA-256."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from contracts.catalogue import District
from inspection.adapters.evidence import (
    SHA256_PATTERN,
    SUPPORTED_TYPES,
    EvidenceError,
    EvidenceStore,
    StoredEvidence,
    media_type,
    too_large,
    unsupported,
)
from stallkit.auth import Principal, Role, require_role
from stallkit.openapi import problems
from stallkit.problems import ProblemError, register_messages

register_messages({"district_required": ("请指定辖区", "Give the district")})

Staff = Annotated[Principal, require_role(Role.PATROL, Role.DISTRICT, Role.ADMIN)]
Sha256Path = Annotated[
    str,
    Path(
        pattern=SHA256_PATTERN,
        description="SHA-256 of the photo (lower-case hex).",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    ),
]

_PHOTO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The photo's bytes as they are (not multipart).",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in SUPPORTED_TYPES},
    }
}
_PHOTO_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The photo's bytes, with a strong ETag (its SHA-256).",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in SUPPORTED_TYPES},
    },
    304: {"description": "The client's copy (If-None-Match) is current."},
}


class EvidenceOut(BaseModel):
    """A stored photo: cite its ``sha256`` in scans and case steps."""

    sha256: str = Field(pattern=SHA256_PATTERN, description="SHA-256 of the bytes (hex).")
    size: int = Field(description="Size in bytes.", examples=[183_204])
    content_type: str = Field(description="image/jpeg or image/png.", examples=["image/jpeg"])
    url: str = Field(description="Where to read it back.", examples=["/v1/evidence/9f86d0..."])

    @classmethod
    def of(cls, stored: StoredEvidence) -> EvidenceOut:
        """The answer for a stored photo."""
        return cls(
            sha256=stored.sha256,
            size=stored.size,
            content_type=stored.content_type,
            url=f"/v1/evidence/{stored.sha256}",
        )


def _uploading_district(caller: Principal, district: District | None) -> str:
    """Staff upload for their own district; an administrator names one."""
    if caller.role is Role.ADMIN:
        if district is None:
            raise ProblemError("district_required", 422, "an administrator gives ?district=")
        return district.value
    if not caller.district:
        raise ProblemError("forbidden", 403, "the token names no district")
    if district is not None and district.value != caller.district:
        raise EvidenceError("other_district", 403)
    return caller.district


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with ``evidence_too_large`` as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large(max_bytes)  # stop reading: the rest is never buffered
    return bytes(body)


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if wanted is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return "*" in tags or etag in tags


def evidence_router(store: EvidenceStore) -> APIRouter:
    """Upload and read evidence photos kept in ``store``."""
    router = APIRouter(prefix="/v1/evidence", tags=["evidence"])

    @router.post(
        "",
        status_code=201,
        response_model=EvidenceOut,
        openapi_extra=_PHOTO_BODY,
        responses={
            200: {"description": "The same bytes were stored before: the same answer."},
            **problems(403, 413, 415, 422),
        },
    )
    async def upload_evidence(
        request: Request, caller: Staff, district: District | None = None
    ) -> Response:
        """Store a JPEG or PNG photo sent as the raw body (staff; an administrator names the
        district); identical bytes are stored once."""
        owner = _uploading_district(caller, district)
        declared = media_type(request.headers.get("content-type", ""))
        if declared not in SUPPORTED_TYPES:
            raise unsupported(f"{declared or 'no content type'} is not image/jpeg or image/png")
        data = await read_limited(request, store.max_bytes)
        stored, created = await store.upload(data, declared, district=owner, uploader=caller.sub)
        out = EvidenceOut.of(stored)
        return JSONResponse(
            out.model_dump(mode="json"),
            status_code=201 if created else 200,
            headers={"Location": out.url},
        )

    async def _photo(request: Request, sha256: str, caller: Principal) -> Response:
        stored = await store.readable(
            sha256, None if caller.role is Role.ADMIN else caller.district
        )
        path = store.path(sha256)
        if not await asyncio.to_thread(path.is_file):
            raise EvidenceError("evidence_not_found", 404, sha256=sha256)
        etag = _etag(sha256)
        headers = {
            "ETag": etag,
            # Never changes, but only its district's staff may see it: no shared caches.
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=stored.content_type, headers=headers)

    @router.get(
        "/{sha256}",
        response_class=Response,
        responses={**_PHOTO_RESPONSE, **problems(403, 404)},
    )
    async def get_evidence(request: Request, sha256: Sha256Path, caller: Staff) -> Response:
        """The photo's bytes (staff of a district that uploaded it, or an administrator)."""
        return await _photo(request, sha256, caller)

    @router.head("/{sha256}", response_class=Response, include_in_schema=False)
    async def head_evidence(request: Request, sha256: Sha256Path, caller: Staff) -> Response:
        """The photo's headers only."""
        return await _photo(request, sha256, caller)

    return router
