"""The OpenAPI document lists every route's problem+json answers; a 405 says what is allowed."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from stallkit.auth import CurrentPrincipal, Principal, Role, require_role
from stallkit.openapi import install_problem_docs, problems
from stallkit.problems import PROBLEM_JSON, install_problem_handlers

pytestmark = pytest.mark.unit

Admin = Annotated[Principal, require_role(Role.ADMIN)]


class Note(BaseModel):
    """A request body."""

    text: str


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_problem_docs(app)
    router = APIRouter(prefix="/v1")

    @router.put("/notes/{note_id}", responses=problems(409))
    async def put_note(note_id: str, body: Note, _: Admin) -> Note:
        """Role-checked, with a path parameter, a body and a conflict of its own."""
        return body

    @router.delete("/notes/{note_id}")
    async def delete_note(note_id: str, _: Admin) -> None:
        """Another method of the same path, on another route."""

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        """Any valid token."""
        return {"sub": principal.sub}

    @router.get("/open")
    async def open_route() -> dict[str, str]:
        """No token, no parameter."""
        return {}

    app.include_router(router)
    return app


def _responses(app: FastAPI, path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = app.openapi()["paths"][path][method]["responses"]
    return responses


def test_statuses_are_derived_from_the_route_and_added_by_it() -> None:
    app = _app()
    assert sorted(_responses(app, "/v1/notes/{note_id}", "put")) == [
        "200", "400", "401", "403", "404", "409", "413", "422",
    ]  # fmt: skip
    assert sorted(_responses(app, "/v1/notes/{note_id}", "delete")) == [
        "200", "401", "403", "404", "422",
    ]  # fmt: skip
    assert sorted(_responses(app, "/v1/me", "get")) == ["200", "401"]  # any role: no 403
    assert sorted(_responses(app, "/v1/open", "get")) == ["200"]


def test_every_problem_is_problem_json_with_the_shared_schema() -> None:
    app = _app()
    document = app.openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                assert list(response["content"]) == [PROBLEM_JSON], (path, method, status)
                schema = response["content"][PROBLEM_JSON]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
                assert response["description"] != "Validation Error"
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code"}
    assert problem["additionalProperties"] is True
    challenge = _responses(app, "/v1/me", "get")["401"]["headers"]["WWW-Authenticate"]
    assert challenge["required"] is True


def test_documenting_twice_changes_nothing() -> None:
    app = _app()
    first = app.openapi()
    assert app.openapi() is first
    assert _responses(app, "/v1/open", "get") == {
        "200": first["paths"]["/v1/open"]["get"]["responses"]["200"]
    }


async def test_method_not_allowed_names_every_method_of_the_path() -> None:
    transport = httpx.ASGITransport(_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.patch("/v1/notes/n1")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == "DELETE, PUT"  # Starlette alone says only one of them
