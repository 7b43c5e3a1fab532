"""Fast paths: a hot route's ordinary request served without FastAPI's per-request work.

FastAPI solves a route's dependencies on every request: it re-derives cache keys, security
scopes and parameters, decodes the body to Python objects and validates those. On the booking
path that is about a fifth of the time. A fast path is a plain function of the request that
serves the common case (a caller with the right role, a JSON body the model takes, the headers
it needs) and returns ``None`` for anything else. The route then answers the documented way, so
every refusal (422 with its field errors, a wrong content type, a missing header) stays exactly
what FastAPI says. The route's OpenAPI document comes from its endpoint as before.

    @router.post("", ...)
    @fast_path(_book_fast)
    async def book_stall(body: BookingRequest, principal: CurrentVendor, ...) -> Response: ...

and the router is built with ``APIRouter(route_class=FastPathRoute)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

FastPath = Callable[[Request], Awaitable[Response | None]]
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

_FAST: dict[Callable[..., Any], FastPath] = {}


def fast_path(fast: FastPath) -> Callable[[F], F]:
    """Give an endpoint a fast path (put it under the route decorator)."""

    def mark(endpoint: F) -> F:
        _FAST[endpoint] = fast
        return endpoint

    return mark


class FastPathRoute(APIRoute):
    """A route that tries its endpoint's fast path first, if it has one."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        fast = _FAST.get(self.endpoint)
        if fast is None:
            return handler

        async def app(request: Request) -> Response:
            response = await fast(request)
            # The body read by the fast path is kept by the request for the documented way.
            return response if response is not None else await handler(request)

        return app


async def json_body(request: Request, model: type[M]) -> M | None:
    """The request's body as ``model`` if it is JSON the model takes; None otherwise (the
    documented way then says what is wrong with it)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return None
    try:
        return model.model_validate_json(await request.body())
    except ValidationError:
        return None
