"""A route's fast path serves its ordinary requests; everything else gets FastAPI's answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from stallkit.auth import Principal, Role, TokenVerifier, caller_with_role, mint_token, require_role
from stallkit.clock import Clock
from stallkit.fastpath import FastPathRoute, fast_path, json_body
from stallkit.keys import Issuer, SigningKey, TokenKeys, new_seed
from stallkit.problems import PROBLEM_JSON, install_problem_handlers

pytestmark = pytest.mark.unit

STAFF = SigningKey.from_seed(Issuer.STAFF, new_seed())
Admin = Annotated[Principal, require_role(Role.ADMIN)]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=10)


def _token(role: Role) -> str:
    return mint_token(
        STAFF, sub="s-1", role=role, now=datetime.now(UTC), ttl_seconds=600,
        audience=["windows"], district="doumen",
    )  # fmt: skip


def _app() -> tuple[FastAPI, list[str]]:
    """An app whose note route records which way each request went."""
    went: list[str] = []
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = TokenVerifier(
        TokenKeys.parse({"keys": [STAFF.public_jwk()]}), Clock(), audience="windows"
    )
    router = APIRouter(route_class=FastPathRoute)

    async def fast(request: Request) -> Response | None:
        principal = caller_with_role(request, Role.ADMIN)
        tag = request.headers.get("x-tag")
        body = await json_body(request, Note)
        if tag is None or body is None or "x-documented" in request.headers:
            return None
        went.append("fast")
        return Response(f'"{principal.sub}:{tag}:{body.text}"', media_type="application/json")

    @router.post("/notes")
    @fast_path(fast)
    async def post_note(
        body: Note, principal: Admin, x_tag: Annotated[str, Header(max_length=5)]
    ) -> str:
        """The documented way."""
        went.append("documented")
        return f"{principal.sub}:{x_tag}:{body.text}"

    @router.get("/plain")
    async def plain() -> str:
        """A route without a fast path."""
        return "plain"

    app.include_router(router, prefix="/v1")
    return app, went


async def test_an_ordinary_request_takes_the_fast_path_with_the_same_answer() -> None:
    app, went = _app()
    headers = {"authorization": f"Bearer {_token(Role.ADMIN)}", "x-tag": "t"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        fast = await c.post("/v1/notes", json={"text": "hi"}, headers=headers)
        charset = await c.post(
            "/v1/notes", content=b'{"text": "hi"}',
            headers={**headers, "content-type": "application/json; charset=utf-8"},
        )  # fmt: skip
        documented = await c.post(
            "/v1/notes", json={"text": "hi"}, headers={**headers, "x-documented": "1"}
        )
        assert (await c.get("/v1/plain")).json() == "plain"
    assert went == ["fast", "fast", "documented"]
    assert fast.status_code == charset.status_code == documented.status_code == 200
    assert fast.json() == charset.json() == documented.json() == "s-1:t:hi"
    assert fast.headers["content-type"] == documented.headers["content-type"]


async def test_refusals_are_fastapis_own_and_the_body_is_read_once() -> None:
    app, went = _app()
    admin = f"Bearer {_token(Role.ADMIN)}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        no_token = await c.post("/v1/notes", json={"text": "hi"}, headers={"x-tag": "t"})
        patrol = await c.post(
            "/v1/notes", json={"text": "hi"},
            headers={"authorization": f"Bearer {_token(Role.PATROL)}", "x-tag": "t"},
        )  # fmt: skip
        too_long = await c.post(
            "/v1/notes",
            json={"text": "far too long"},
            headers={"authorization": admin, "x-tag": "t"},
        )
        no_tag = await c.post("/v1/notes", json={"text": "hi"}, headers={"authorization": admin})
        not_json = await c.post(
            "/v1/notes", content=b"text=hi",
            headers={"authorization": admin, "x-tag": "t", "content-type": "text/plain"},
        )  # fmt: skip
    assert (no_token.status_code, no_token.json()["code"]) == (401, "unauthorized")
    assert (patrol.status_code, patrol.json()["code"]) == (403, "forbidden")
    for refused in (too_long, no_tag, not_json):
        assert refused.status_code == 422
        assert refused.headers["content-type"] == PROBLEM_JSON
    assert [e["loc"] for e in too_long.json()["errors"]] == [["body", "text"]]
    assert [e["loc"] for e in no_tag.json()["errors"]] == [["header", "x-tag"]]
    assert went == []  # nothing refused reached either endpoint


def test_the_documented_route_is_unchanged_in_openapi() -> None:
    app, _ = _app()
    operation = app.openapi()["paths"]["/v1/notes"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Note"
    )
    assert [p["name"] for p in operation["parameters"]] == ["x-tag"]
