"""Composition root of the inspection service: settings, Redis, Kafka, routes, subscribers and
the outbox relay.

``uvicorn inspection.app:app`` builds the app on first access of ``app``; tests call
:func:`create_app` with their own settings (and may swap the parts or the projection store).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from faststream_fastapi import FastStreamAPI

from inspection.adapters.enforcement_store import EnforcementStore
from inspection.adapters.evidence import EvidenceStore
from inspection.adapters.expectation_store import ExpectationStore, RedisExpectationStore
from inspection.adapters.keys import Keys
from inspection.config import InspectionSettings
from inspection.domain.violations import ViolationCatalogue
from inspection.entrypoints.http import catalogue_router, expectation_router
from inspection.entrypoints.http_enforcement import enforcement_router
from inspection.entrypoints.http_evidence import evidence_router
from inspection.entrypoints.open311 import open311_router
from inspection.entrypoints.patrol_page import patrol_router
from inspection.entrypoints.subscribers import ExpectationProjector, subscribe_projection
from inspection.service_layer.enforcement import Enforcement
from stallkit.outbox import OutboxRelay
from stallkit.service import ServiceParts, build_service, lazy_app


def create_app(
    settings: InspectionSettings | None = None,
    *,
    parts: ServiceParts | None = None,
    store: ExpectationStore | None = None,
    configure_logs: bool = True,
) -> FastStreamAPI:
    """Build the inspection service; ``parts`` and ``store`` default to the real ones."""
    settings = settings or InspectionSettings()
    if parts is None:
        parts = ServiceParts.from_settings(settings)
    projection = store or RedisExpectationStore(
        parts.redis, settings, parts.clock, settings.expected_retention_days
    )
    keys = Keys(settings.redis_prefix)
    catalogue = ViolationCatalogue.load(settings.violations_file)
    evidence = EvidenceStore(
        parts.redis, keys, settings.evidence_dir, settings.evidence_max_bytes, clock=parts.clock
    )

    records = EnforcementStore(parts.redis, keys, source=f"/services/{settings.service_name}")
    enforcement = Enforcement(
        records,
        projection,
        catalogue,
        parts.clock,
        public_key=settings.stall_code_key(),
        subject_salt=settings.subject_salt,
        lookback=timedelta(days=settings.repeat_lookback_days),
        offline_max_age=timedelta(hours=settings.offline_scan_max_age_hours),
        check_evidence=evidence.require,
        street_radius_km=settings.street_report_radius_km,
        street_markets=settings.street_report_markets,
    )
    subscribe_projection(parts.broker, settings, parts.redis, ExpectationProjector(projection))

    async def start_relay() -> Callable[[], Awaitable[None]]:
        relay = OutboxRelay(parts.redis, settings, keys.outbox(), registry=parts.registry)
        relay.start()
        return relay.stop

    app = build_service(
        parts,
        title="Inspection service 巡查执法",
        description=(
            "Patrol inspection: stall-code scans judged against who should be where, the "
            '"1+1" warning/case policy, the closed case loop, evidence, street reports that '
            "guide vendors to markets with room, and a hash-chained enforcement record."
        ),
        routers=[
            enforcement_router(enforcement),
            evidence_router(evidence),
            expectation_router(projection, parts.clock),
            catalogue_router(catalogue),
            open311_router(enforcement, catalogue),
            patrol_router(),
        ],
        background=[start_relay],
        configure_logs=configure_logs,
        # a phone photo is larger than any JSON body
        body_limits={"/v1/evidence": settings.evidence_max_bytes + 1},
    )
    app._application.state.enforcement = enforcement
    app._application.state.projection = projection
    return app


__getattr__ = lazy_app(create_app, globals())
