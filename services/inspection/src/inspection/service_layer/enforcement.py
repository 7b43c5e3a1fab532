"""Inspection use cases: scans, street reports, the "1+1" decision, cases, the record.

Reads of the projection (who should be where, which window runs) happen before the decision;
the decision itself (the subject's history, warnings, cases, the record, the events) commits in
one optimistic transaction of :class:`EnforcementStore`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.catalogue import STALL_ID_PATTERN, market_of_stall
from contracts.events import (
    CaseOpened,
    ScanRecorded,
    StreetVendingReported,
    WarningIssued,
)
from inspection.adapters.enforcement_store import (
    IDEMPOTENCY_TTL_SECONDS,
    EnforcementStore,
    Tx,
)
from inspection.adapters.expectation_store import ExpectationStore
from inspection.domain.cases import Case
from inspection.domain.expected import CodeStatus
from inspection.domain.policy import (
    CodeCheck,
    Disposal,
    Observation,
    code_shape_is_stall_code,
    dispose,
    identity_subject,
    judge,
)
from inspection.domain.violations import STREET_VENDING, Violation, ViolationCatalogue
from inspection.service_layer.casework import (
    Casework,
    EvidenceCheck,
    case_view,
    scope,
    write_case,
)
from stallkit import stall_codes
from stallkit.auth import Principal, Role
from stallkit.clock import Clock
from stallkit.problems import ProblemError

#: How far ahead of the service clock an observation time may be (phone clocks drift).
FUTURE_SKEW = timedelta(minutes=2)


def new_id(prefix: str) -> str:
    """A fresh id: ``<prefix>_`` and 16 hex digits."""
    return f"{prefix}_{secrets.token_hex(8)}"


def fingerprint(body: dict[str, Any]) -> str:
    """What makes two requests with one ``Idempotency-Key`` the same request."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ScanCommand:
    """A patrol's scan, as received."""

    code: str
    stall_id: str | None
    observed_at: datetime | None
    occupied: bool
    vendor_id: str | None = None
    identity_number: str | None = None
    violations: tuple[str, ...] = ()
    note: str = ""
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreetReportCommand:
    """A patrol's report of vending outside any market."""

    lat: float
    lon: float
    category: str | None
    observed_at: datetime | None
    vendor_id: str | None = None
    identity_number: str | None = None
    violations: tuple[str, ...] = ()
    note: str = ""
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Idempotency:
    """A request's ``Idempotency-Key``, whose key it is and what the request said."""

    caller: str
    key: str
    fingerprint: str


@dataclass
class Outcome:
    """The warnings and cases one occasion produced, and the record entries it added."""

    warnings: list[dict[str, Any]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    record: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Occasion:
    """Where, when and about whom a scan or street report found violations."""

    subject: str | None
    vendor_id: str | None
    district: str
    market_id: str
    stall_id: str | None
    source_id: str
    observed_at: datetime
    location: tuple[float, float] | None = None


class Enforcement(Casework):
    """Scans, street reports, cases and the record of one inspection service."""

    def __init__(
        self,
        store: EnforcementStore,
        projection: ExpectationStore,
        catalogue: ViolationCatalogue,
        clock: Clock,
        *,
        public_key: Ed25519PublicKey,
        subject_salt: str,
        lookback: timedelta,
        offline_max_age: timedelta,
        check_evidence: EvidenceCheck | None = None,
        street_radius_km: float = 5.0,
        street_markets: int = 5,
    ):
        self.store = store
        self.keys = store.keys
        self.projection = projection
        self.catalogue = catalogue
        self.clock = clock
        self.public_key = public_key
        self.subject_salt = subject_salt
        self.lookback = lookback
        self.offline_max_age = offline_max_age
        self.check_evidence = check_evidence
        self.street_radius_km = street_radius_km
        self.street_markets = street_markets

    # -- shared steps -------------------------------------------------------------------------

    def _observed_at(self, given: datetime | None, now: datetime) -> datetime:
        if given is None:
            return now
        if given.tzinfo is None:
            raise ProblemError("observed_at_needs_timezone", 422)
        if given > now + FUTURE_SKEW:
            raise ProblemError("observed_in_future", 422)
        if given < now - self.offline_max_age:
            raise ProblemError(
                "scan_too_late", 422, max_age_hours=self.offline_max_age.total_seconds() / 3600
            )
        return given

    def _subject(self, vendor_id: str | None, identity_number: str | None) -> str | None:
        if vendor_id:
            return vendor_id
        if identity_number:
            try:
                return identity_subject(identity_number, self.subject_salt)
            except ValueError:
                raise ProblemError("identity_number_invalid", 422) from None
        return None

    def _violations(self, types: Sequence[str]) -> list[Violation]:
        unknown = self.catalogue.unknown(list(types))
        if unknown:
            raise ProblemError("unknown_violation", 422, unknown=unknown)
        return [self.catalogue[t] for t in dict.fromkeys(types)]

    async def _replay(self, tx: Tx, idem: Idempotency | None) -> dict[str, Any] | None:
        if idem is None:
            return None
        key = self.keys.idempotency(idem.caller, idem.key)
        raw = await tx.get(key)
        if raw is None:
            return None
        stored: dict[str, Any] = json.loads(raw)
        if stored["fingerprint"] != idem.fingerprint:
            raise ProblemError("idempotency_key_reused", 422)
        body: dict[str, Any] = stored["body"]
        return body

    def _remember(self, tx: Tx, idem: Idempotency | None, body: dict[str, Any]) -> None:
        if idem is not None:
            value = json.dumps({"fingerprint": idem.fingerprint, "body": body}, default=str)
            tx.set(self.keys.idempotency(idem.caller, idem.key), value, IDEMPOTENCY_TTL_SECONDS)

    async def _dispose(
        self,
        tx: Tx,
        occasion: Occasion,
        violations: list[Violation],
        *,
        now: datetime,
        actor: Principal,
    ) -> Outcome:
        """Warnings or cases for ``violations`` by the subject ("1+1"), recorded and published."""
        outcome = Outcome()
        if not violations or occasion.subject is None:
            return outcome
        subject, vendor_id, district = occasion.subject, occasion.vendor_id, occasion.district
        market_id, stall_id, source_id = occasion.market_id, occasion.stall_id, occasion.source_id
        observed_at, location = occasion.observed_at, occasion.location
        history_key = self.keys.subject_violations(subject)
        await tx.watch(history_key)
        observed_ms = observed_at.timestamp() * 1000
        earlier = await tx.count_between(
            history_key, (observed_at - self.lookback).timestamp() * 1000, observed_ms
        )
        for violation, disposal in dispose(violations, earlier):
            if disposal is Disposal.WARNING:
                warning_id = new_id("wn")
                warning = {
                    "warning_id": warning_id,
                    "kind": "warning",
                    "district": district,
                    "market_id": market_id,
                    "stall_id": stall_id,
                    "subject_id": subject,
                    "vendor_id": vendor_id,
                    "violation": violation.type,
                    "violation_zh": violation.name_zh,
                    "violation_en": violation.name_en,
                    "source_id": source_id,
                    "observed_at": observed_at.isoformat(),
                    "issued_at": now.isoformat(),
                }
                tx.set(self.keys.warning(warning_id), json.dumps(warning, ensure_ascii=False))
                tx.zadd(history_key, warning_id, observed_ms)
                tx.zadd(self.keys.subject_items(subject), warning_id, observed_ms)
                outcome.warnings.append(warning)
                outcome.record.append(
                    await tx.append(district, at=now, kind="warning", ref=warning_id, data=warning)
                )
                tx.publish(
                    WarningIssued(
                        market_id=market_id,
                        district=district,
                        warning_id=warning_id,
                        subject_id=subject,
                        violation=violation.type,
                        scan_id=source_id,
                        stall_id=stall_id,
                    ),
                    now,
                )
                continue
            case = Case(
                case_id=new_id("cs"),
                district=district,
                market_id=market_id,
                stall_id=stall_id,
                subject_id=subject,
                vendor_id=vendor_id,
                violation=violation.type,
                penalty_min_cny=violation.penalty_min_cny,
                penalty_max_cny=violation.penalty_max_cny,
                opened_at=now,
                observed_at=observed_at,
                deadline=now + timedelta(hours=violation.deadline_hours),
                source_id=source_id,
                lat=location[0] if location else None,
                lon=location[1] if location else None,
            )
            write_case(tx, self.keys, case)
            tx.zadd(self.keys.district_cases(district), case.case_id, now.timestamp() * 1000)
            tx.zadd(history_key, case.case_id, observed_ms)
            tx.zadd(self.keys.subject_items(subject), case.case_id, observed_ms)
            outcome.cases.append(case)
            outcome.record.append(
                await tx.append(
                    district,
                    at=now,
                    kind="case_opened",
                    ref=case.case_id,
                    data={**case_view(case, now), "reported_by": actor.sub},
                )
            )
            tx.publish(
                CaseOpened(
                    market_id=market_id,
                    district=district,
                    case_id=case.case_id,
                    violation=violation.type,
                    deadline=case.deadline,
                    penalty_min_cny=violation.penalty_min_cny,
                    penalty_max_cny=violation.penalty_max_cny,
                    subject_id=subject,
                    scan_id=source_id,
                    stall_id=stall_id,
                ),
                now,
            )
        return outcome

    async def _conclude(
        self,
        tx: Tx,
        occasion: Occasion,
        violations: list[Violation],
        *,
        body: dict[str, Any],
        entry: dict[str, Any],
        idem: Idempotency | None,
        now: datetime,
        actor: Principal,
    ) -> tuple[dict[str, Any], bool]:
        """Dispose of the occasion's violations; the answer, remembered for its retries."""
        outcome = await self._dispose(tx, occasion, violations, now=now, actor=actor)
        answer = body | {
            "warnings": outcome.warnings,
            "cases": [case_view(c, now) for c in outcome.cases],
            "record": {"seq": entry["seq"], "hash": entry["hash"]},
        }
        self._remember(tx, idem, answer)
        return answer, False

    # -- scans --------------------------------------------------------------------------------

    def _check_code(self, command: ScanCommand) -> tuple[CodeCheck, str, int | None]:
        """What the code text says (before the projection is asked) and the stall it is for."""
        code = stall_codes.verify(self.public_key, command.code)
        if code is not None:
            if command.stall_id and command.stall_id != code.stall_id:
                return CodeCheck.OTHER_STALL, command.stall_id, None
            return CodeCheck.VALID, code.stall_id, code.version
        check = CodeCheck.FORGED if code_shape_is_stall_code(command.code) else CodeCheck.UNREADABLE
        if command.stall_id:
            return check, command.stall_id, None
        named = command.code.strip().split(".")[1] if check is CodeCheck.FORGED else ""
        if re.match(STALL_ID_PATTERN, named):
            return check, named, None  # the stall the forged code names: where it was found
        raise ProblemError("stall_id_required", 422, code_check=check.value)

    async def scan(
        self, caller: Principal, command: ScanCommand, idem: Idempotency
    ) -> tuple[dict[str, Any], bool]:
        """Judge a scan at its observation time and record it; (answer, was it a replay)."""
        now = self.clock.now()
        observed_at = self._observed_at(command.observed_at, now)
        check, stall_id, version = self._check_code(command)
        market_id = market_of_stall(stall_id)
        market = await self.projection.get_market(market_id)
        if market is None:
            raise ProblemError("market_unknown", 404)
        district = market.district
        scope(caller, district)
        if check is CodeCheck.VALID and version is not None:
            status = await self.projection.code_status(market_id, stall_id, version)
            if status is CodeStatus.REVOKED:
                check = CodeCheck.REVOKED
            elif status is CodeStatus.SUPERSEDED:
                check = CodeCheck.SUPERSEDED
        window = await self.projection.window_at(market_id, observed_at)
        expected = (
            await self.projection.expected_in(market_id, stall_id, window) if window else None
        )
        subject = self._subject(command.vendor_id, command.identity_number)
        if command.occupied and subject is None:
            raise ProblemError("who_required", 422)
        finding = judge(
            check,
            window_open=window is not None,
            expected_vendor=expected.vendor_id if expected else None,
            seen=Observation(command.occupied, command.vendor_id, subject),
        )
        types = [*([finding.violation] if finding.violation else []), *command.violations]
        violations = self._violations(types)
        if violations and subject is None:
            raise ProblemError("subject_required", 422)
        if command.photos and self.check_evidence is not None:
            await self.check_evidence(command.photos, district)
        scan_id = new_id("sc")
        late_by = (now - observed_at).total_seconds()
        body = {
            "scan_id": scan_id,
            "stall_id": stall_id,
            "market_id": market_id,
            "district": district,
            "outcome": finding.outcome.value,
            "code_check": check.value,
            "observed_at": observed_at.isoformat(),
            "recorded_at": now.isoformat(),
            "late_by_seconds": round(late_by, 3) if late_by > 1 else 0.0,
            "window": None
            if window is None
            else {
                "window_id": window.window_id,
                "date": window.date.isoformat(),
                "starts_at": window.starts_at.isoformat(),
                "ends_at": window.ends_at.isoformat(),
            },
            "expected": None
            if expected is None
            else {"booking_id": expected.booking_id, "vendor_id": expected.vendor_id},
            "occupied": command.occupied,
            "vendor_id": command.vendor_id,
            "subject_id": subject,
            "violations": [v.type for v in violations],
            "note": command.note,
            "photos": list(command.photos),
            "patrol_id": caller.sub,
        }

        async def decide(tx: Tx) -> tuple[dict[str, Any], bool]:
            replay = await self._replay(tx, idem)
            if replay is not None:
                return replay, True
            scan_record = {k: v for k, v in body.items() if k != "photos"} | {
                "photos": list(command.photos)
            }
            tx.set(self.keys.scan(scan_id), json.dumps(scan_record, ensure_ascii=False))
            entry = await tx.append(district, at=now, kind="scan", ref=scan_id, data=scan_record)
            tx.publish(
                ScanRecorded(
                    market_id=market_id,
                    district=district,
                    scan_id=scan_id,
                    stall_id=stall_id,
                    outcome=finding.outcome,
                    violations=[v.type for v in violations],
                    patrol_id=caller.sub,
                    observed_at=observed_at,
                    window_id=window.window_id if window else None,
                    vendor_id=command.vendor_id,
                ),
                now,
            )
            occasion = Occasion(
                subject, command.vendor_id, district, market_id, stall_id, scan_id, observed_at
            )
            return await self._conclude(
                tx, occasion, violations, body=body, entry=entry, idem=idem, now=now, actor=caller
            )

        return await self.store.run(decide, watch=[self.keys.idempotency(idem.caller, idem.key)])

    # -- street reports -----------------------------------------------------------------------

    async def street_report(
        self, caller: Principal, command: StreetReportCommand, idem: Idempotency | None
    ) -> tuple[dict[str, Any], bool]:
        """Record street vending and answer with the nearest markets that have room."""
        now = self.clock.now()
        observed_at = self._observed_at(command.observed_at, now)
        nearby = await self.projection.nearest_markets(
            command.lat, command.lon, self.street_radius_km, 50
        )
        if not nearby:
            nearby = await self.projection.nearest_markets(command.lat, command.lon, 200.0, 1)
        if not nearby:
            raise ProblemError("market_unknown", 404)
        nearest_market = await self.projection.get_market(nearby[0][0])
        if caller.role is Role.ADMIN or caller.district is None:
            district = nearest_market.district if nearest_market else ""
        else:
            district = caller.district
        guide: list[dict[str, Any]] = []
        for market_id, distance_km in nearby:
            if len(guide) >= self.street_markets or distance_km > self.street_radius_km:
                break
            window = await self.projection.current_or_next_window(market_id, observed_at)
            if window is None:
                continue
            free = await self.projection.free_stalls(market_id, window, command.category)
            if free <= 0:
                continue
            facts = await self.projection.get_market(market_id)
            guide.append(
                {
                    "market_id": market_id,
                    "name_zh": getattr(facts, "name_zh", None),
                    "name_en": getattr(facts, "name_en", None),
                    "district": facts.district if facts else None,
                    "distance_km": round(distance_km, 3),
                    "free_stalls": free,
                    "window_id": window.window_id,
                    "date": window.date.isoformat(),
                    "starts_at": window.starts_at.isoformat(),
                    "ends_at": window.ends_at.isoformat(),
                    "open_now": window.starts_at <= observed_at < window.ends_at,
                }
            )
        subject = self._subject(command.vendor_id, command.identity_number)
        violations = self._violations([STREET_VENDING, *command.violations]) if subject else []
        if command.violations and subject is None:
            raise ProblemError("subject_required", 422)
        if command.photos and self.check_evidence is not None:
            await self.check_evidence(command.photos, district)
        report_id = new_id("sr")
        market_id = nearby[0][0]
        body = {
            "report_id": report_id,
            "district": district,
            "lat": command.lat,
            "lon": command.lon,
            "category": command.category,
            "observed_at": observed_at.isoformat(),
            "recorded_at": now.isoformat(),
            "subject_id": subject,
            "violations": [v.type for v in violations],
            "note": command.note,
            "photos": list(command.photos),
            "patrol_id": caller.sub,
            "markets": guide,
        }

        async def decide(tx: Tx) -> tuple[dict[str, Any], bool]:
            replay = await self._replay(tx, idem)
            if replay is not None:
                return replay, True
            entry = await tx.append(
                district, at=now, kind="street_report", ref=report_id, data=body
            )
            tx.publish(
                StreetVendingReported(
                    market_id=market_id,
                    district=district,
                    report_id=report_id,
                    lat=command.lat,
                    lon=command.lon,
                    guided_to=[g["market_id"] for g in guide],
                    patrol_id=caller.sub,
                ),
                now,
            )
            occasion = Occasion(
                subject, command.vendor_id, district, market_id, None, report_id, observed_at,
                location=(command.lat, command.lon),
            )  # fmt: skip
            return await self._conclude(
                tx, occasion, violations, body=body, entry=entry, idem=idem, now=now, actor=caller
            )

        watch = [self.keys.idempotency(idem.caller, idem.key)] if idem else []
        return await self.store.run(decide, watch=watch)
