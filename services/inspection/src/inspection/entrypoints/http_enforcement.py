"""HTTP routes of scans, street reports, cases, vendors' own warnings and the record."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse

from contracts.catalogue import District
from contracts.events import CaseState
from contracts.text import IsoDate
from inspection.domain.cases import Case
from inspection.entrypoints.schemas import (
    CaseOut,
    CasePage,
    EvaluationIn,
    IdempotencyKey,
    MyItemOut,
    RecordExport,
    RecordRef,
    ScanIn,
    ScanOut,
    StreetReportIn,
    StreetReportOut,
    TransitionIn,
    VerifyOut,
)
from inspection.service_layer.casework import case_view
from inspection.service_layer.enforcement import (
    Enforcement,
    Idempotency,
    ScanCommand,
    StreetReportCommand,
    fingerprint,
)
from stallkit.auth import Principal, Role, require_role
from stallkit.clock import local_datetime
from stallkit.openapi import problems
from stallkit.problems import ProblemError, register_messages

register_messages(
    {
        "idempotency_key_required": (
            "缺少 Idempotency-Key 请求头",
            "Idempotency-Key header required",
        ),
        "idempotency_key_reused": (
            "该 Idempotency-Key 已用于另一个请求",
            "This Idempotency-Key was used for a different request",
        ),
        "observed_in_future": ("观察时间晚于当前时间", "The observation time is in the future"),
        "observed_at_needs_timezone": (
            "观察时间须带时区",
            "The observation time needs a time zone",
        ),
        "scan_too_late": ("离线记录超过可补传时限", "The offline scan is too old to be accepted"),
        "stall_id_required": (
            "摊位码无法识别，请填写摊位编号",
            "The code cannot be read: give the stall id",
        ),
        "market_unknown": ("尚未收到该市场的目录信息", "The market is not known to inspection yet"),
        "who_required": (
            "摊位有人经营时须记录经营者（摊贩编号或身份证号）",
            "Someone is at the stall: record who (vendor id or identity number)",
        ),
        "subject_required": (
            "记录违规须指明当事人",
            "A violation needs the person it concerns",
        ),
        "identity_number_invalid": ("证件号码格式不正确", "Not a valid identity number"),
        "unknown_violation": ("违规类型不在目录中", "Violation type not in the catalogue"),
        "case_not_found": ("找不到该案件", "Case not found"),
        "illegal_transition": ("案件当前状态不允许此操作", "Not allowed in the case's state"),
        "role_not_allowed": ("您的角色不能执行此操作", "Your role may not take this step"),
        "handler_cannot_verify": (
            "处置人不能核实或退回自己处置的案件",
            "Whoever handled the case cannot verify it or send it back",
        ),
        "case_not_closed": ("案件结案后才能评价", "Only a closed case can be evaluated"),
        "already_evaluated": ("该案件已评价", "The case was already evaluated"),
        "score_out_of_range": ("评分须为 1 到 5", "The score must be 1 to 5"),
        "district_required": ("请指定辖区", "Give the district"),
    }
)

Staff = Annotated[Principal, require_role(Role.PATROL, Role.DISTRICT, Role.ADMIN)]
PatrolCaller = Annotated[Principal, require_role(Role.PATROL, Role.ADMIN)]
Office = Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)]
Evaluator = Annotated[Principal, require_role(Role.VENDOR, Role.DISTRICT, Role.ADMIN)]
VendorCaller = Annotated[Principal, require_role(Role.VENDOR)]
CaseId = Annotated[str, Path(pattern=r"^cs_[0-9a-f]{16}$", examples=["cs_5f2b9a1c77e1d3a0"])]


def _district_of(caller: Principal, district: District | None) -> str:
    if district is not None:
        return district.value
    if caller.role is not Role.ADMIN and caller.district:
        return caller.district
    raise ProblemError("district_required", 422)


def _case_out(case: Case, now: dt.datetime) -> CaseOut:
    return CaseOut.model_validate(case_view(case, now))


def enforcement_router(enforcement: Enforcement) -> APIRouter:
    """Scans, street reports, cases and the record."""
    router = APIRouter(prefix="/v1", tags=["inspection"])
    clock = enforcement.clock

    @router.post(
        "/scans",
        status_code=201,
        response_model=ScanOut,
        responses={
            200: {"description": "A retry with the same Idempotency-Key: the first answer."},
            **problems(403, 404, 422),
        },
    )
    async def post_scan(
        body: ScanIn, caller: PatrolCaller, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Judge a scanned stall code at its observation time; warn or open cases ("1+1")."""
        if not idempotency_key:
            raise ProblemError("idempotency_key_required", 400)
        command = ScanCommand(
            code=body.code,
            stall_id=body.stall_id,
            observed_at=body.observed_at,
            occupied=body.occupied,
            vendor_id=body.vendor_id,
            identity_number=body.identity_number,
            violations=tuple(body.violations),
            note=body.note,
            photos=tuple(body.photos),
        )
        idem = Idempotency(caller.sub, idempotency_key, fingerprint(body.model_dump(mode="json")))
        answer, replayed = await enforcement.scan(caller, command, idem)
        out = ScanOut.model_validate(answer)
        return JSONResponse(out.model_dump(mode="json"), status_code=200 if replayed else 201)

    @router.post(
        "/street-reports",
        status_code=201,
        response_model=StreetReportOut,
        responses=problems(403, 404, 422),
    )
    async def post_street_report(
        body: StreetReportIn, caller: PatrolCaller, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Record vending outside any market; list the nearest markets with free stalls (疏导)."""
        command = StreetReportCommand(
            lat=body.location.lat,
            lon=body.location.lon,
            category=body.category.value if body.category else None,
            observed_at=body.observed_at,
            vendor_id=body.vendor_id,
            identity_number=body.identity_number,
            violations=tuple(body.violations),
            note=body.note,
            photos=tuple(body.photos),
        )
        idem = (
            Idempotency(caller.sub, idempotency_key, fingerprint(body.model_dump(mode="json")))
            if idempotency_key
            else None
        )
        answer, replayed = await enforcement.street_report(caller, command, idem)
        out = StreetReportOut.model_validate(answer)
        return JSONResponse(out.model_dump(mode="json"), status_code=200 if replayed else 201)

    @router.get("/cases", response_model=CasePage, responses=problems(403))
    async def list_cases(
        caller: Staff,
        district: District | None = None,
        state: CaseState | None = None,
        violation: Annotated[str | None, Query(alias="type", max_length=40)] = None,
        overdue: bool | None = None,
        date_from: Annotated[IsoDate | None, Query(alias="from")] = None,
        date_to: Annotated[IsoDate | None, Query(alias="to")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> CasePage:
        """Cases of the caller's district (any for an administrator), newest first."""
        found = await enforcement.cases(
            caller,
            district=district.value if district else None,
            state=state,
            violation=violation,
            overdue=overdue,
            opened_from=local_datetime(date_from, 0) if date_from else None,
            opened_to=local_datetime(date_to + dt.timedelta(days=1), 0) if date_to else None,
        )
        now = clock.now()
        page = found[offset : offset + limit]
        after = offset + len(page)
        return CasePage(
            items=[_case_out(c, now) for c in page],
            total=len(found),
            limit=limit,
            offset=offset,
            next_offset=after if after < len(found) else None,
        )

    @router.get("/cases/{case_id}", response_model=CaseOut, responses=problems(403, 404))
    async def get_case(case_id: CaseId, caller: Staff) -> CaseOut:
        """One case with its history."""
        return _case_out(await enforcement.case(caller, case_id), clock.now())

    @router.post(
        "/cases/{case_id}/transitions", response_model=CaseOut, responses=problems(403, 404, 409)
    )
    async def post_transition(case_id: CaseId, body: TransitionIn, caller: Office) -> CaseOut:
        """Take a step of the case loop (file, dispatch, handle, verify, send_back, close)."""
        case = await enforcement.act(caller, case_id, body.action, body.note, tuple(body.photos))
        return _case_out(case, clock.now())

    @router.post(
        "/cases/{case_id}/evaluation", response_model=CaseOut, responses=problems(403, 404, 409)
    )
    async def post_evaluation(
        case_id: CaseId, caller: Evaluator, body: Annotated[EvaluationIn, Body()]
    ) -> CaseOut:
        """Evaluate a closed case (its vendor, or the district office), once."""
        return _case_out(await enforcement.evaluate(caller, case_id, body.score), clock.now())

    @router.get("/me/warnings", response_model=list[MyItemOut])
    async def my_warnings(caller: VendorCaller) -> list[dict[str, Any]]:
        """The calling vendor's own warnings and cases, newest first."""
        return await enforcement.my_items(caller.sub)

    @router.get("/record/verify", response_model=VerifyOut, responses=problems(403, 422))
    async def verify_record(caller: Office, district: District | None = None) -> VerifyOut:
        """Recompute the district's hash chain; name the first broken entry."""
        name = _district_of(caller, district)
        verdict = await enforcement.verify_record(caller, name)
        return VerifyOut(
            district=District(name),
            valid=verdict.valid,
            entries=verdict.entries,
            broken_at=verdict.broken_at,
            reason=verdict.reason,
            head_hash=verdict.head_hash,
        )

    @router.get("/record/export", response_model=RecordExport, responses=problems(403, 422))
    async def export_record(caller: Office, district: District | None = None) -> RecordExport:
        """The district's record with its hashes, for an outside auditor."""
        name = _district_of(caller, district)
        entries = await enforcement.export_record(caller, name)
        head = await enforcement.store.record_head(name)
        return RecordExport(
            district=District(name),
            head=RecordRef(seq=head[0], hash=head[1]) if head else None,
            entries=entries,
        )

    return router
