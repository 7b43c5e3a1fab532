"""Errors as RFC 9457 problem+json with a stable ``code`` and zh-CN / en messages."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stallkit.headers import with_security_headers

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)

#: code -> (zh-CN, en) human message. Services add their own with :func:`register_messages`.
MESSAGES: dict[str, tuple[str, str]] = {
    "validation_failed": ("请求内容不符合要求", "The request is not valid"),
    "malformed_body": ("请求内容无法解析", "The request body could not be parsed"),
    "not_found": ("找不到该资源", "Not found"),
    "method_not_allowed": ("不支持该请求方法", "Method not allowed"),
    "unauthorized": ("需要登录或令牌无效", "Authentication required or token invalid"),
    "token_expired": ("令牌已过期", "Token expired"),
    "forbidden": ("无权执行此操作", "You may not do this"),
    # one text for every service: the code is shared, and the messages are one process-wide table
    "other_district": (
        "只能查看或处置本辖区的事项",
        "Staff may only read or act on their own district",
    ),
    "payload_too_large": ("请求内容过大", "Request body too large"),
    "unsupported_media_type": ("请求内容类型不受支持", "Unsupported media type"),
    "internal_error": ("服务器内部错误", "Internal server error"),
    "service_unavailable": ("服务暂不可用", "Service unavailable"),
    "http_error": ("请求失败", "Request failed"),
}


def register_messages(messages: dict[str, tuple[str, str]]) -> None:
    """Add a service's error codes and their zh-CN / en messages."""
    MESSAGES.update(messages)


class ProblemError(Exception):
    """A domain or API error with a stable code; turned into problem+json by one handler."""

    def __init__(self, code: str, status: int = 400, detail: str | None = None, **extra: Any):
        super().__init__(detail or code)
        self.code = code
        self.status = status
        self.detail = detail
        self.extra = extra


def wants_english(request: Request) -> bool:
    """True when Accept-Language prefers English over Chinese."""
    header = request.headers.get("accept-language", "")
    best_lang, best_q = "zh", 0.0
    for part in header.split(","):
        piece = part.strip()
        if not piece:
            continue
        lang, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best_lang, best_q = lang.strip().lower(), q
    return best_lang.startswith("en")


def problem_response(
    request: Request, code: str, status: int, detail: str | None = None, **extra: Any
) -> JSONResponse:
    """Build the problem+json response for ``code``."""
    zh, en = MESSAGES.get(code, MESSAGES["http_error"])
    english = wants_english(request)
    body: dict[str, Any] = {
        "type": f"https://markets.zhuhai.gov.cn/problems/{code}",
        "title": en if english else zh,
        "status": status,
        "code": code,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = {"Content-Language": "en" if english else "zh-CN"}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_STATUS_CODES = {
    400: "malformed_body",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def allowed_methods(request: Request) -> str:
    """The ``Allow`` of a 405: every method of the path, whichever route answers it."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _clean_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        errors.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", ""))[:200],
                "type": str(err.get("type", "")),
            }
        )
    return errors[:20]


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem+json response."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.code, exc.status, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, "validation_failed", 422, errors=_clean_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) and code == "http_error" else None
        response = problem_response(request, code, exc.status_code, detail)
        response.headers.update(exc.headers or {})
        # Starlette's Allow names the methods of one route only, not of the whole path.
        if exc.status_code == 405 and (allowed := allowed_methods(request)):
            response.headers["Allow"] = allowed
        return response

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _store_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("store unavailable", extra={"path": request.url.path, "error": repr(exc)})
        response = problem_response(request, "service_unavailable", 503)
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        response = problem_response(request, "internal_error", 500)
        # Starlette sends this from its own outermost middleware, outside the one of
        # stallkit.service that adds the security headers: they are added here.
        response.raw_headers = with_security_headers(response.raw_headers)
        return response
