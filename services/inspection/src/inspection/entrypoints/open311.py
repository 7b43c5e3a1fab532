"""A read-only Open311 GeoReport v2 view of the cases (https://wiki.open311.org/GeoReport_v2),
in XML and JSON, so that city tools that speak Open311 can read them.

Services are the violation types of the catalogue; service requests are the cases. Open311 is a
public format: nothing about the person a case concerns (subject or vendor ids) is shown.
Errors are Open311 error lists (``[{"code", "description"}]`` / ``<errors><error>``), not
problem+json, in the format the path asks for.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from contracts.catalogue import District
from contracts.events import CaseState
from inspection.domain.cases import Case
from inspection.domain.violations import Violation, ViolationCatalogue
from inspection.service_layer.enforcement import Enforcement
from stallkit.auth import Principal, Role, require_role
from stallkit.clock import MARKET_TZ, local_datetime
from stallkit.problems import MESSAGES, ProblemError, register_messages, wants_english

#: The spec's default and largest span of a query, and the most requests one answer holds.
QUERY_SPAN = timedelta(days=90)
MAX_REQUESTS = 1000
CASE_ID = re.compile(r"^cs_[0-9a-f]{16}$")

register_messages(
    {
        "open311_bad_datetime": (
            "start_date 与 end_date 须为带时区的 ISO 8601 时间，如 2026-11-20T18:00:00+08:00",
            "start_date and end_date must be ISO 8601 (w3) datetimes with a time zone, "
            "e.g. 2026-11-20T18:00:00+08:00",
        ),
        "open311_bad_range": (
            "end_date 须晚于 start_date，且跨度不超过 90 天",
            "end_date must not be before start_date, and the range may not span over 90 days",
        ),
        "open311_bad_status": ("status 只能是 open 或 closed", "status must be open or closed"),
        "open311_unknown_service": ("没有该服务类型", "No such service_code"),
        "open311_too_many_ids": (
            "一次最多查询 1000 个 service_request_id",
            "At most 1000 service_request_id values at once",
        ),
        "open311_request_not_found": ("找不到该服务请求", "Service request not found"),
        "open311_other_district": (
            "只能查看本辖区的服务请求",
            "Staff may only read their own district's service requests",
        ),
    }
)

#: District → (Chinese name, English name), for addresses and the responsible office.
DISTRICT_NAMES: dict[District, tuple[str, str]] = {
    District.XIANGZHOU: ("香洲区", "Xiangzhou district"),
    District.DOUMEN: ("斗门区", "Doumen district"),
    District.JINWAN: ("金湾区", "Jinwan district"),
    District.HENGQIN: ("横琴粤澳深度合作区", "Hengqin cooperation zone"),
    District.GAOXIN: ("高新区", "Gaoxin high-tech zone"),
    District.WANSHAN: ("万山海洋开发试验区", "Wanshan marine zone"),
    District.GAOLANGANG: ("高栏港经济区", "Gaolan Port economic zone"),
}
STATE_NAMES: dict[CaseState, str] = {
    CaseState.REPORTED: "已上报",
    CaseState.FILED: "已立案",
    CaseState.DISPATCHED: "已派遣",
    CaseState.HANDLED: "已处置",
    CaseState.VERIFIED: "已核实",
    CaseState.CLOSED: "已结案",
}


class Open311Format(StrEnum):
    """The formats this endpoint serves."""

    JSON = "json"
    XML = "xml"


class ServiceOut(BaseModel):
    """A service (request type): one violation type of the catalogue."""

    service_code: str = Field(description="The violation type.", examples=["road_occupation"])
    service_name: str = Field(examples=["占道经营 / Road-occupying business"])
    description: str = Field(description="How the violation is handled.")
    metadata: bool = Field(description="Always false: no service has extra attributes.")
    type: Literal["realtime", "batch", "blackbox"] = Field(examples=["realtime"])
    keywords: str | None = Field(description='"exempt" when on the "1+1" exemption list.')
    group: Literal["minor", "serious"] = Field(examples=["minor"])


class ServiceDefinitionOut(BaseModel):
    """A service definition: no service of this view has attributes."""

    service_code: str = Field(examples=["road_occupation"])
    attributes: list[dict[str, Any]] = Field(description="Always empty (metadata is false).")


class RequestOut(BaseModel):
    """A service request: one case, without the person it concerns."""

    service_request_id: str = Field(examples=["cs_5f2b9a1c77e1d3a0"])
    status: Literal["open", "closed"]
    status_notes: str | None = Field(description="The case's state and its last note.")
    service_name: str = Field(examples=["占道经营 / Road-occupying business"])
    service_code: str = Field(examples=["road_occupation"])
    description: str = Field(description="What was seen and when.")
    agency_responsible: str | None = Field(
        examples=["香洲区综合行政执法局 / Xiangzhou district enforcement office"]
    )
    service_notice: str | None = Field(description="The suggested penalty range.")
    requested_datetime: str = Field(examples=["2026-11-20T18:00:00+08:00"])
    updated_datetime: str = Field(description="The last step of the case, or its opening.")
    expected_datetime: str | None = Field(description="The case's disposal deadline.")
    address: str | None = Field(examples=["XZ-07-A001, XZ-07, 香洲区 Xiangzhou district, 珠海市"])
    address_id: str | None = Field(description="The stall id, if the case is at a stall.")
    zipcode: str | None = Field(description="Not known (always empty).")
    lat: float | None = Field(description="WGS-84 latitude of a street report.")
    long: float | None = Field(description="WGS-84 longitude of a street report.")
    media_url: str | None = Field(description="The first evidence photo of the case.")


class Open311ErrorOut(BaseModel):
    """One Open311 error."""

    code: int = Field(description="The HTTP status.", examples=[404])
    description: str = Field(examples=["找不到该服务请求"])


# -- mapping ----------------------------------------------------------------------------------


def w3(moment: datetime) -> str:
    """A datetime in the spec's w3 format, in Asia/Shanghai time with its offset."""
    return moment.astimezone(MARKET_TZ).isoformat(timespec="seconds")


def _district(district: str) -> tuple[str, str] | None:
    try:
        return DISTRICT_NAMES[District(district)]
    except ValueError:
        return None


def agency_of(district: str) -> str:
    """The district office that handles a district's cases."""
    names = _district(district)
    if names is None:
        return "珠海市城市管理和综合执法局 / Zhuhai city enforcement bureau"
    return f"{names[0]}综合行政执法局 / {names[1]} enforcement office"


def _penalty(low: int, high: int) -> str:
    return f"建议处罚 {low}–{high} 元 / suggested penalty CNY {low}–{high}"


def service_of(violation: Violation) -> ServiceOut:
    """The Open311 service of a violation type."""
    if violation.warnable:
        zh, en = (
            "轻微违规，列入免罚清单：首次违规予以警告、不处罚，再犯立案",
            "minor, on the exemption list: a first offence is a warning with no penalty, "
            "a repeat opens a case",
        )
    elif violation.minor:
        zh, en = "轻微违规，立案处理", "minor: a case is opened"
    else:
        zh, en = "严重违规，立案处理", "serious: a case is opened"
    low, high, hours = (
        violation.penalty_min_cny,
        violation.penalty_max_cny,
        violation.deadline_hours,
    )
    return ServiceOut(
        service_code=violation.type,
        service_name=f"{violation.name_zh} / {violation.name_en}",
        description=(
            f"{zh}；处置时限 {hours} 小时；建议处罚 {low}–{high} 元。"
            f" / {en[0].upper()}{en[1:]}; disposal within {hours} h; "
            f"suggested penalty CNY {low}–{high}."
        ),
        metadata=False,
        type="realtime",
        keywords="exempt" if violation.exempt else None,
        group="minor" if violation.minor else "serious",
    )


def status_of(case: Case) -> Literal["open", "closed"]:
    """Open311's status of a case: closed once the case is closed, open before."""
    return "closed" if case.state is CaseState.CLOSED else "open"


def request_of(case: Case, catalogue: ViolationCatalogue, *, media_base: str = "") -> RequestOut:
    """The Open311 service request of a case (never its subject or vendor)."""
    violation = catalogue.by_type.get(case.violation)
    name = f"{violation.name_zh} / {violation.name_en}" if violation else case.violation
    last = case.history[-1] if case.history else None
    notes = f"{STATE_NAMES[case.state]} {case.state.value}"
    if last is not None and last.note.strip():
        notes += f": {last.note.strip()}"
    photo = next((p for item in case.history for p in item.photos), None)
    names = _district(case.district)
    place = f"{names[0]} {names[1]}, 珠海市" if names else "珠海市"
    if case.stall_id:
        address = f"{case.stall_id}, {case.market_id}, {place}"
    else:
        address = f"{case.market_id} 附近 near {case.market_id}, {place}"
    return RequestOut(
        service_request_id=case.case_id,
        status=status_of(case),
        status_notes=notes,
        service_name=name,
        service_code=case.violation,
        description=f"{name}，发现于 / observed at {w3(case.observed_at)}",
        agency_responsible=agency_of(case.district),
        service_notice=_penalty(case.penalty_min_cny, case.penalty_max_cny),
        requested_datetime=w3(case.opened_at),
        updated_datetime=w3(last.at if last else case.opened_at),
        expected_datetime=w3(case.deadline),
        address=address,
        address_id=case.stall_id,
        zipcode=None,
        lat=case.lat,
        long=case.lon,
        media_url=f"{media_base}/v1/evidence/{photo}" if photo else None,
    )


# -- queries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestQuery:
    """What ``GET requests`` asks for: ids (overriding the rest), or filters and a time range."""

    ids: tuple[str, ...] = ()
    codes: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive

    def wants(self, case: Case) -> bool:
        """Whether the case passes the code and status filters."""
        return (self.codes is None or case.violation in self.codes) and (
            self.statuses is None or status_of(case) in self.statuses
        )


def _listed(value: str | None) -> list[str]:
    """A comma-separated argument's items (an empty argument is no argument)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A "+" of an offset that was not percent-encoded arrives as a space.
_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}T[\d:.]+) (\d{2}(?::?\d{2})?)$")


def parse_w3(text: str, *, end: bool = False) -> datetime:
    """A start (inclusive) or, with ``end``, an exclusive end from a w3 date or datetime."""
    text = text.strip()
    if _DATE_ONLY.match(text):
        day = date.fromisoformat(text)
        return local_datetime(day + timedelta(days=1) if end else day, 0)
    text = _SPACED_OFFSET.sub(r"\1+\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ProblemError("open311_bad_datetime", 400, text) from None
    if moment.tzinfo is None:
        raise ProblemError("open311_bad_datetime", 400, text)
    return moment + timedelta(microseconds=1) if end else moment


def parse_query(
    catalogue: ViolationCatalogue,
    now: datetime,
    *,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> RequestQuery:
    """The query of ``GET requests`` as the spec reads its arguments."""
    ids = tuple(dict.fromkeys(_listed(service_request_id)))
    if ids:
        if len(ids) > MAX_REQUESTS:
            raise ProblemError("open311_too_many_ids", 400)
        return RequestQuery(ids=ids)
    codes = _listed(service_code)
    unknown = catalogue.unknown(codes)
    if unknown:
        raise ProblemError("open311_unknown_service", 400, ", ".join(unknown))
    statuses = {s.lower() for s in _listed(status)}
    if statuses - {"open", "closed"}:
        raise ProblemError("open311_bad_status", 400, ", ".join(sorted(statuses)))
    start = parse_w3(start_date) if start_date and start_date.strip() else None
    stop = parse_w3(end_date, end=True) if end_date and end_date.strip() else None
    if start is None and stop is None:
        start = now - QUERY_SPAN
    elif start is None and stop is not None:
        start = stop - QUERY_SPAN
    elif stop is None and start is not None:
        stop = start + QUERY_SPAN
    elif start is not None and stop is not None and (stop < start or stop - start > QUERY_SPAN):
        raise ProblemError("open311_bad_range", 400)
    return RequestQuery(
        codes=frozenset(codes) or None, statuses=frozenset(statuses) or None, start=start, end=stop
    )


# -- rendering --------------------------------------------------------------------------------

JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _fill(parent: ET.Element, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        child = ET.SubElement(parent, name)
        if isinstance(value, list):
            continue  # only a definition's (empty) attribute list
        child.text = _text(value)


def to_xml(root: str, item: str | None, items: Sequence[dict[str, Any]]) -> bytes:
    """An XML document: ``<root><item>fields</item>...</root>``, or the root's own fields when
    ``item`` is None."""
    element = ET.Element(root)
    if item is None:
        _fill(element, items[0])
    else:
        for fields in items:
            _fill(ET.SubElement(element, item), fields)
    body = ET.tostring(element, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'.encode()


def dump(models: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """Models as JSON-ready dicts (what both formats are rendered from)."""
    return [m.model_dump(mode="json") for m in models]


def render(
    fmt: Open311Format,
    data: list[dict[str, Any]] | dict[str, Any],
    root: str,
    item: str | None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A list as JSON, or as XML ``<root><item>...``; one object (``item`` None) as a JSON
    object, or as XML ``<root>fields</root>``."""
    if fmt is Open311Format.XML:
        items = [data] if isinstance(data, dict) else data
        return Response(to_xml(root, item, items), status_code, headers, media_type=XML_TYPE)
    body = json.dumps(data, ensure_ascii=False).encode()
    return Response(body, status_code, headers, media_type=JSON_TYPE)


def error_response(
    fmt: Open311Format, status: int, descriptions: Iterable[str], english: bool = False
) -> Response:
    """An Open311 error list with the HTTP status as each error's code."""
    errors = [Open311ErrorOut(code=status, description=d) for d in descriptions]
    headers = {"Content-Language": "en" if english else "zh-CN"}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return render(fmt, dump(errors), "errors", "error", status, headers)


def _format_of(request: Request) -> Open311Format:
    return Open311Format.XML if request.url.path.endswith(".xml") else Open311Format.JSON


class Open311Route(APIRoute):
    """A route that answers its errors (auth, validation, not found) as Open311 error lists."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, with ProblemError and validation errors turned into lists."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            english = wants_english(request)
            try:
                return await handler(request)
            except ProblemError as exc:
                zh, en = MESSAGES.get(exc.code, MESSAGES["http_error"])
                text = en if english else zh
                if exc.detail:
                    text = f"{text}: {exc.detail}"
                return error_response(_format_of(request), exc.status, [text], english)
            except RequestValidationError as exc:
                texts = [
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}"[:200]
                    for e in exc.errors()
                ][:20]
                return error_response(_format_of(request), 400, texts, english)

        return handle


# -- routes -----------------------------------------------------------------------------------

Office = Annotated[Principal, require_role(Role.DISTRICT, Role.ADMIN)]
FormatPath = Annotated[Open311Format, Path(description="Response format: json or xml.")]
Jurisdiction = Annotated[
    str | None, Query(max_length=100, description="Ignored: this endpoint serves one city.")
]
_ERROR_CONTENT = {
    "application/json": {"schema": {"type": "array", "items": Open311ErrorOut.model_json_schema()}},
    "text/xml": {"schema": {"type": "string", "description": "<errors><error>..."}},
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    texts = {
        400: "Invalid arguments.",
        401: "No bearer token, or one this service does not accept.",
        403: "Not a district office or administrator, or another district's request.",
        404: "No such service or service request.",
    }
    return {s: {"description": texts[s], "content": _ERROR_CONTENT} for s in statuses}


def _ok(root: str) -> dict[int | str, dict[str, Any]]:
    xml = {"schema": {"type": "string", "description": f"<{root}>... (XML format)"}}
    return {200: {"content": {"text/xml": xml}}}


def open311_router(enforcement: Enforcement, catalogue: ViolationCatalogue) -> APIRouter:
    """``/open311/v2/``: services (violation types) and service requests (cases), read-only,
    for district offices (their district's cases) and administrators (all)."""
    router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route)

    @router.get(
        "/services.{format}",
        response_model=list[ServiceOut],
        responses={**_ok("services"), **_errors(400, 401, 403)},
    )
    async def list_services(
        format: FormatPath, _: Office, jurisdiction_id: Jurisdiction = None
    ) -> Response:
        """GET Service List: every violation type."""
        return render(format, dump(service_of(v) for v in catalogue), "services", "service")

    @router.get(
        "/services/{service_code}.{format}",
        response_model=ServiceDefinitionOut,
        responses={**_ok("service_definition"), **_errors(400, 401, 403, 404)},
    )
    async def get_service_definition(
        service_code: str, format: FormatPath, _: Office, jurisdiction_id: Jurisdiction = None
    ) -> Response:
        """GET Service Definition: the service with no attributes (its metadata is false)."""
        if service_code not in catalogue:
            raise ProblemError("open311_unknown_service", 404, service_code)
        definition = ServiceDefinitionOut(service_code=service_code, attributes=[])
        return render(format, definition.model_dump(mode="json"), "service_definition", None)

    @router.get(
        "/requests.{format}",
        response_model=list[RequestOut],
        responses={**_ok("service_requests"), **_errors(400, 401, 403)},
    )
    async def list_requests(
        request: Request,
        format: FormatPath,
        caller: Office,
        service_request_id: Annotated[
            str | None, Query(description="Comma-separated ids; overrides all other arguments.")
        ] = None,
        service_code: Annotated[str | None, Query(description="Comma-separated codes.")] = None,
        start_date: Annotated[str | None, Query(description="Earliest requested_datetime.")] = None,
        end_date: Annotated[str | None, Query(description="Latest requested_datetime.")] = None,
        status: Annotated[str | None, Query(description="open, closed or both.")] = None,
        jurisdiction_id: Jurisdiction = None,
    ) -> Response:
        """GET Service Requests: the caller's district's cases (all for an administrator),
        newest first, by default of the last 90 days, at most 1000."""
        query = parse_query(
            catalogue,
            enforcement.clock.now(),
            service_request_id=service_request_id,
            service_code=service_code,
            start_date=start_date,
            end_date=end_date,
            status=status,
        )
        if query.ids:
            wanted = [i for i in query.ids if CASE_ID.match(i)]
            found = [
                c
                for c in await enforcement.store.get_cases(wanted)
                if caller.role is Role.ADMIN or c.district == caller.district
            ]
        else:
            found = [
                c
                for c in await enforcement.cases(
                    caller,
                    district=None,
                    state=None,
                    violation=None,
                    overdue=None,
                    opened_from=query.start,
                    opened_to=query.end,
                )
                if query.wants(c)
            ]
        base = str(request.base_url).rstrip("/")
        items = [request_of(c, catalogue, media_base=base) for c in found[:MAX_REQUESTS]]
        return render(format, dump(items), "service_requests", "request")

    @router.get(
        "/requests/{service_request_id}.{format}",
        response_model=list[RequestOut],
        responses={**_ok("service_requests"), **_errors(400, 401, 403, 404)},
    )
    async def get_request(
        request: Request,
        service_request_id: str,
        format: FormatPath,
        caller: Office,
        jurisdiction_id: Jurisdiction = None,
    ) -> Response:
        """GET Service Request: one case (403 if it is another district's)."""
        if not CASE_ID.match(service_request_id):
            raise ProblemError("open311_request_not_found", 404, service_request_id)
        try:
            case = await enforcement.case(caller, service_request_id)
        except ProblemError as exc:
            if exc.code == "other_district":  # it exists, but the caller may not see it
                raise ProblemError("open311_other_district", 403) from None
            if exc.code == "case_not_found":
                raise ProblemError("open311_request_not_found", 404, service_request_id) from None
            raise
        base = str(request.base_url).rstrip("/")
        items = [request_of(case, catalogue, media_base=base)]
        return render(format, dump(items), "service_requests", "request")

    return router
