"""OpenAPI documents that tell the truth about errors: every route's problem+json answers.

FastAPI documents a route's success and its own 422 (``HTTPValidationError``), while a
service answers errors as ``application/problem+json`` (:mod:`stallkit.problems`). The
generated document is post-processed once: the problem statuses a route can answer are derived
from its shape (a bearer token -> 401, a role check -> 403, a body -> 400/413/422, path
parameters -> 404, any parameter -> 422), a route adds its own with ``responses=problems(409)``,
and every 4xx/5xx response is documented as the shared ``Problem`` schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security.base import SecurityBase

from stallkit.auth import BEARER_DEPENDENCIES, current_principal
from stallkit.problems import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/Problem"

#: The shared problem schema (RFC 9457 members, the stable ``code``, extra members allowed).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": (
        "An error as RFC 9457 problem details with a stable `code`. More members may follow "
        "(`errors` of a validation failure, a route's own details)."
    ),
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {
            "type": "string",
            "description": "URI naming the problem type (ends with the code).",
            "examples": ["https://markets.zhuhai.gov.cn/problems/not_found"],
        },
        "title": {
            "type": "string",
            "description": "Human-readable summary in zh-CN, or en by Accept-Language.",
            "examples": ["找不到该资源"],
        },
        "status": {
            "type": "integer",
            "minimum": 400,
            "maximum": 599,
            "description": "The HTTP status.",
        },
        "detail": {"type": "string", "description": "What went wrong in this case."},
        "code": {
            "type": "string",
            "description": "Stable machine-readable code (`validation_failed`, `forbidden`, ...).",
            "examples": ["not_found"],
        },
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "array",
            "description": "What is invalid (`validation_failed` only).",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

#: What each problem status means across the services (a route may say more).
DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (`malformed_body`, or the route's own code).",
    401: (
        "No bearer token, or one this service does not accept (`unauthorized`, "
        "`token_expired`, `token_not_yet_valid`, `wrong_audience`)."
    ),
    403: "The caller may not do this (`forbidden` for the wrong role, or the route's own code).",
    404: "Not found (`not_found`, or the route's own code such as `market_not_found`).",
    409: "The request conflicts with the current state (the route's own code).",
    413: "Request body over the size limit (`payload_too_large`).",
    422: "Invalid input (`validation_failed` with `errors`, or the route's own code).",
    429: "Too many attempts (`too_many_attempts`); try again later.",
    500: "Internal error (`internal_error`).",
    503: "Not available now (`service_unavailable`).",
}

_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
#: The security scheme of a route whose caller is read from its bearer token (the name and shape
#: FastAPI's ``HTTPBearer`` gives it).
_BEARER_SCHEME = {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
_BEARER_CHALLENGE = {
    "WWW-Authenticate": {
        "description": "`Bearer`: the authentication scheme to use.",
        "required": True,
        "schema": {"type": "string"},
    }
}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` documenting a route's own problem statuses, e.g. ``problems(409, 429)``.

    Any other 4xx/5xx a route lists in ``responses=`` (say, with its own description) is
    documented as a problem too.
    """
    return {
        status: {"description": DESCRIPTIONS.get(status, "Problem."), "content": _problem_content()}
        for status in statuses
    }


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _uses_bearer(dependant: Dependant) -> bool:
    return dependant.call in BEARER_DEPENDENCIES or any(
        isinstance(sub.call, SecurityBase) for sub in dependant.dependencies
    )


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every documented route as included: full path, and router-level dependencies merged."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            yield route


def derived_statuses(route: Any) -> set[int]:
    """The problem statuses a route (an ``APIRoute`` as included) can answer by its shape."""
    statuses: set[int] = set()
    for dependant in _dependants(route.dependant):
        if dependant is route.dependant or not _uses_bearer(dependant):
            continue
        statuses.add(401)
        if dependant.call is not current_principal:  # anything else checks who the caller is
            statuses.add(403)
    params = get_flat_params(route.dependant)
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    if route.dependant.path_params:
        statuses.add(404)
    if params:
        statuses.add(422)
    return statuses


def _as_problem(status: int, response: dict[str, Any]) -> dict[str, Any]:
    """The response documented as problem+json (FastAPI's own 422 body dropped)."""
    content = dict(response.get("content", {}))
    json_content = content.get("application/json", {})
    if not json_content or json_content.get("schema", {}).get("$ref") == _FASTAPI_422:
        content.pop("application/json", None)
    content.setdefault(PROBLEM_JSON, _problem_content()[PROBLEM_JSON])
    description = response.get("description")
    if description in (None, "", "Validation Error"):
        description = DESCRIPTIONS.get(status, "Problem.")
    headers = dict(response.get("headers", {}))
    if status == 401:
        headers.update(_BEARER_CHALLENGE)
    others = {k: v for k, v in response.items() if k not in ("description", "headers", "content")}
    return {
        "description": description,
        **({"headers": headers} if headers else {}),
        "content": content,
        **others,
    }


def document_problems(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Document the problem+json responses of every route of ``app`` in ``schema`` (in place)."""
    paths = schema.get("paths", {})
    for route in _api_routes(app):
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = derived_statuses(route)
            if 401 in statuses:
                operation.setdefault("security", [{name: []} for name in _BEARER_SCHEME])
            for status in sorted(statuses):
                responses.setdefault(str(status), {})
            operation["responses"] = {
                key: _as_problem(int(key), response)
                if key.isdigit() and int(key) >= 400
                else response
                for key, response in sorted(responses.items())
            }
    components = schema.setdefault("components", {})
    if '"security"' in json.dumps(paths):
        components["securitySchemes"] = {**components.get("securitySchemes", {}), **_BEARER_SCHEME}
    schemas = {**components.get("schemas", {}), "Problem": PROBLEM_SCHEMA}
    if f'"{_FASTAPI_422}"' not in json.dumps(schema):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    components["schemas"] = dict(sorted(schemas.items()))
    return schema


def install_problem_docs(app: FastAPI) -> None:
    """Make ``app``'s ``/openapi.json`` document every route's problem+json responses."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's, cached until the routes change
        if not documented or documented[0] is not schema:
            documented[:] = [document_problems(app, schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
