"""The common shape of a service: FastAPI + FastStream, health, readiness, metrics, errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from faststream.kafka import KafkaBroker
from faststream_fastapi import FastStreamAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stallkit.auth import install_token_verifier, whoami_router
from stallkit.clock import Clock
from stallkit.headers import with_security_headers
from stallkit.logs import configure_logging
from stallkit.messaging import consumer_health, make_broker, start_broker_when_reachable
from stallkit.openapi import install_problem_docs, problems
from stallkit.problems import install_problem_handlers, problem_response
from stallkit.redis_client import RedisClient, redis_client
from stallkit.redis_client import ping as ping_redis
from stallkit.redis_client import warm_up as warm_up_redis
from stallkit.settings import CommonSettings
from stallkit.tasks import cancel_and_wait

MAX_BODY_BYTES = 256 * 1024

#: Something to start with the service and stop with it (relays, timers).
Background = Callable[[], Awaitable[Callable[[], Awaitable[None]]]]

S = TypeVar("S", bound=CommonSettings)
T = TypeVar("T")
S_contra = TypeVar("S_contra", bound=CommonSettings, contravariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


@dataclass
class ServiceParts:
    """What a service is built from; tests can swap any of these before ``build_service``."""

    settings: CommonSettings
    clock: Clock
    redis: RedisClient
    broker: KafkaBroker
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ServiceParts:
        """The real adapters: clock, Redis client and Kafka broker, as the settings say."""
        return cls(
            settings=settings,
            clock=make_clock(settings),
            redis=make_redis(settings),
            broker=make_broker(settings),
        )


def make_clock(settings: CommonSettings) -> Clock:
    """The shared clock, as the settings say."""
    return Clock(
        offset_seconds=settings.clock_offset_seconds,
        speed=settings.clock_speed,
        anchor=settings.clock_anchor,
    )


def make_redis(settings: CommonSettings) -> RedisClient:
    """The service's Redis client: a Redis Cluster for a ``redis+cluster://`` URL, else one
    redis-server (closing it closes its connections; see :mod:`stallkit.redis_client`)."""
    return redis_client(settings.redis_url, settings.redis_max_connections)


#: FastAPI's native OpenTelemetry instrumentation, off (see :func:`build_service`).
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class _HttpMetrics:
    """Pure ASGI middleware, the outermost: request count and latency by route template; body
    size cap; the security headers of :mod:`stallkit.headers` on every response.

    The cap is :data:`MAX_BODY_BYTES` unless ``body_limits`` gives a path prefix its own (photo
    uploads, say). One layer does all three: each layer of middleware costs every request.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: CollectorRegistry,
        body_limits: Mapping[str, int] | None = None,
    ):
        self.app = app
        self.body_limits = dict(body_limits or {})
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP latency", ["method", "route"], registry=registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_BODY_BYTES
        for prefix, own in self.body_limits.items():
            if scope["path"].startswith(prefix):
                limit = own
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = with_security_headers(list(message.get("headers", ())))
                message = {**message, "headers": headers}
            await send(message)

        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = problem_response(Request(scope), "payload_too_large", 413)
            await response(scope, receive, send_and_record)
            return
        started = time.perf_counter()
        received = 0

        async def receive_within_limit() -> Message:
            # A chunked body has no Content-Length: count what actually arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413)
            return message

        try:
            await self.app(scope, receive_within_limit, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.latency.labels(method, route).observe(time.perf_counter() - started)
            self.requests.labels(method, route, str(status)).inc()


def _ops_router(parts: ServiceParts, started: asyncio.Event) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": parts.settings.service_name}

    @router.get("/readyz", response_model=None, responses=problems(503))
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: Redis and the Kafka broker answer; no consumer waits out a failure."""
        checks: dict[str, bool] = {"redis": False, "kafka": False, "started": started.is_set()}
        with contextlib.suppress(Exception):
            checks["redis"] = await asyncio.wait_for(ping_redis(parts.redis), 1.0)
        with contextlib.suppress(Exception):
            checks["kafka"] = bool(await parts.broker.ping(timeout=1.0))
        stuck = consumer_health(parts.broker).stuck()
        checks["consumers"] = not stuck
        if all(checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return problem_response(
            request, "service_unavailable", 503, checks=checks, stuck_consumers=stuck
        )

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(parts.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def build_service(
    parts: ServiceParts,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    background: Sequence[Background] = (),
    configure_logs: bool = True,
    body_limits: Mapping[str, int] | None = None,
) -> FastStreamAPI:
    """Compose the ASGI app: FastAPI routes + FastStream subscribers + ops endpoints.

    Subscribers must be registered on ``parts.broker`` before this is called. Request bodies
    are capped at :data:`MAX_BODY_BYTES`, or at ``body_limits[prefix]`` under a path prefix.
    Every response carries the security headers of :mod:`stallkit.headers`.
    """
    if configure_logs:
        configure_logging(parts.settings.service_name, parts.settings.log_level)
    started = asyncio.Event()
    stoppers: list[Callable[[], Awaitable[None]]] = []
    connect_task: list[asyncio.Task[None]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await warm_up_redis(parts.redis)
        for start in background:
            stoppers.append(await start())
        started.set()
        try:
            yield
        finally:
            started.clear()
            await cancel_and_wait(*connect_task)
            for stop in reversed(stoppers):
                await stop()
            stoppers.clear()
            await parts.redis.aclose()

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        # Metrics are Prometheus' (/metrics) and logs JSON lines; FastAPI's own OpenTelemetry
        # hooks would look up the global providers on every request (5 % of a request's time).
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = parts.settings
    app.state.clock = parts.clock
    install_token_verifier(app, parts.settings, parts.clock)
    app.state.redis = parts.redis
    app.state.broker = parts.broker
    install_problem_handlers(app)
    install_problem_docs(app)
    origins = parts.settings.cors_origin_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Accept-Language"],
            max_age=600,
        )
    # Outermost, so that every answer carries the security headers (CORS preflights too).
    app.add_middleware(_HttpMetrics, registry=parts.registry, body_limits=body_limits)
    # Routes are matched in order, and matching is not free: service routes (hot paths
    # first, as given) before the operational ones.
    for router in routers:
        app.include_router(router)
    app.include_router(whoami_router(parts.settings.token_audience))
    app.include_router(_ops_router(parts, started))

    async def connect(broker: KafkaBroker) -> None:
        # Never block start-up on Kafka: connect in the background and keep retrying.
        connect_task.append(asyncio.create_task(start_broker_when_reachable(broker)))

    return FastStreamAPI(
        parts.broker, application=app, asyncapi_path="/asyncapi", connection_hook=connect
    )


def lazy_app(factory: Callable[[], Any], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that builds ``app`` on first access (``uvicorn pkg.app:app``).

    Importing the module (tests, tools) then builds nothing.
    """

    def __getattr__(name: str) -> Any:
        if name == "app":
            namespace["app"] = built = factory()
            return built
        raise AttributeError(f"module {namespace.get('__name__')!r} has no attribute {name!r}")

    return __getattr__


class AppFactory(Protocol[S_contra, T_contra]):
    """A service's ``create_app``: settings and, for tests, other parts or another store."""

    def __call__(
        self,
        settings: S_contra | None = None,
        *,
        parts: ServiceParts | None = None,
        store: T_contra | None = None,
        configure_logs: bool = True,
    ) -> FastStreamAPI: ...


def app_factory(
    settings_class: Callable[[], S],
    *,
    title: str,
    description: str,
    default_store: Callable[[ServiceParts, S], T],
    wire: Callable[[ServiceParts, S, T], Sequence[APIRouter]],
) -> AppFactory[S, T]:
    """The ``create_app`` of a service whose state is one store, fed by its subscribers.

    ``wire`` registers the subscribers on ``parts.broker`` and returns the HTTP routers;
    settings default to ``settings_class()`` (the environment), parts to the real adapters and
    the store to ``default_store(parts, settings)``.
    """

    def create_app(
        settings: S | None = None,
        *,
        parts: ServiceParts | None = None,
        store: T | None = None,
        configure_logs: bool = True,
    ) -> FastStreamAPI:
        settings = settings or settings_class()
        if parts is None:
            parts = ServiceParts.from_settings(settings)
        if store is None:
            store = default_store(parts, settings)
        return build_service(
            parts,
            title=title,
            description=description,
            routers=wire(parts, settings, store),
            configure_logs=configure_logs,
        )

    create_app.__doc__ = f"Build the {title}; ``parts`` and ``store`` default to the real ones."
    return create_app
