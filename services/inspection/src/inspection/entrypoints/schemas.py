"""Request and response bodies of the inspection API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Header
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.catalogue import STALL_ID_PATTERN, Category, District
from contracts.events import CaseState, ScanOutcome
from inspection.domain.cases import CaseAction

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of a stored photo.")]
VENDOR_ID = Annotated[str, Field(pattern=r"^vd_[0-9a-zA-Z_-]{4,40}$", examples=["vd_3c59dc048e88"])]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Unique per scan; a retry with the same key returns the first answer.",
    ),
]


class ScanIn(BaseModel):
    """What the patrol scanned and saw."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=300,
        description="The text of the QR code on the stall, as read.",
        examples=["ZHSC1.XZ-03-A017.1.<signature>"],
    )
    stall_id: str | None = Field(
        default=None,
        pattern=STALL_ID_PATTERN,
        description=(
            "The stall the patrol stands at (printed beside the code). A valid code of another "
            "stall is refused; needed when the code cannot be read."
        ),
    )
    observed_at: AwareDatetime | None = Field(
        default=None,
        description="When it was seen (phones queue scans offline); now if omitted; ≤ 24 h ago.",
    )
    occupied: bool = Field(description="Whether someone is vending at the stall.")
    vendor_id: VENDOR_ID | None = Field(
        default=None, description="The vendor present, from their own vendor code or id."
    )
    identity_number: str | None = Field(
        default=None,
        max_length=32,
        description=(
            "Identity number of someone without a vendor account; only a salted hash is kept."
        ),
    )
    violations: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=10, description="Observed violations (catalogue types)."
    )
    note: str = Field(default="", max_length=500)
    photos: list[SHA256] = Field(default_factory=list, max_length=5)


class LocationIn(BaseModel):
    """A point in Zhuhai (WGS-84), the bounds the catalogue's market locations use."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=21.5, le=22.7, examples=[22.2707])
    lon: float = Field(ge=113.0, le=114.4, examples=[113.5767])


class StreetReportIn(BaseModel):
    """Vending seen outside any market."""

    model_config = ConfigDict(extra="forbid")

    location: LocationIn
    category: Category | None = Field(default=None, description="What is being sold.")
    observed_at: AwareDatetime | None = None
    vendor_id: VENDOR_ID | None = None
    identity_number: str | None = Field(default=None, max_length=32)
    violations: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=10
    )
    note: str = Field(default="", max_length=500)
    photos: list[SHA256] = Field(default_factory=list, max_length=5)


class WarningOut(BaseModel):
    """A warning without penalty ("1+1")."""

    warning_id: str
    district: District
    market_id: str
    stall_id: str | None
    subject_id: str
    vendor_id: str | None
    violation: str
    violation_zh: str
    violation_en: str
    source_id: str = Field(description="Scan or street report.")
    observed_at: dt.datetime
    issued_at: dt.datetime


class HistoryOut(BaseModel):
    """One step of a case."""

    action: str
    from_state: CaseState | None
    to_state: CaseState
    actor_id: str
    role: str
    at: dt.datetime
    note: str
    photos: list[str]


class CaseOut(BaseModel):
    """A case of the closed loop."""

    case_id: str
    district: District
    market_id: str
    stall_id: str | None
    subject_id: str
    vendor_id: str | None
    violation: str
    penalty_min_cny: int
    penalty_max_cny: int
    state: CaseState
    opened_at: dt.datetime
    observed_at: dt.datetime
    deadline: dt.datetime = Field(description="Disposal deadline.")
    on_time: bool = Field(description="Handled by the deadline (or not past it yet).")
    overdue: bool = Field(description="Past the deadline and still waiting for disposal.")
    handled_by: str | None
    handled_at: dt.datetime | None
    evaluation: int | None
    source_id: str
    lat: float | None
    lon: float | None
    history: list[HistoryOut]


class RecordRef(BaseModel):
    """Where an action landed in the district's record."""

    seq: int
    hash: str


class WindowRef(BaseModel):
    """The window running at the observation."""

    window_id: str
    date: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime


class ExpectedRef(BaseModel):
    """Who should have been at the stall."""

    booking_id: str
    vendor_id: str


class ScanOut(BaseModel):
    """The scan's one outcome and what followed from it."""

    scan_id: str
    stall_id: str
    market_id: str
    district: District
    outcome: ScanOutcome
    code_check: str = Field(
        description="valid, unreadable, forged, other_stall, revoked or superseded."
    )
    observed_at: dt.datetime
    recorded_at: dt.datetime
    late_by_seconds: float
    window: WindowRef | None
    expected: ExpectedRef | None
    occupied: bool
    vendor_id: str | None
    subject_id: str | None
    violations: list[str]
    note: str
    photos: list[str]
    patrol_id: str
    warnings: list[WarningOut]
    cases: list[CaseOut]
    record: RecordRef


class GuideOut(BaseModel):
    """A market the street vendor can be guided to."""

    market_id: str
    name_zh: str | None
    name_en: str | None
    district: District | None
    distance_km: float
    free_stalls: int
    window_id: str
    date: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    open_now: bool


class StreetReportOut(BaseModel):
    """The recorded report and where to guide the vendor (疏导)."""

    report_id: str
    district: District
    lat: float
    lon: float
    category: Category | None
    observed_at: dt.datetime
    recorded_at: dt.datetime
    subject_id: str | None
    violations: list[str]
    note: str
    photos: list[str]
    patrol_id: str
    markets: list[GuideOut]
    warnings: list[WarningOut]
    cases: list[CaseOut]
    record: RecordRef


class TransitionIn(BaseModel):
    """A step of the case loop."""

    model_config = ConfigDict(extra="forbid")

    action: CaseAction
    note: str = Field(default="", max_length=500)
    photos: list[SHA256] = Field(default_factory=list, max_length=5)


class EvaluationIn(BaseModel):
    """The evaluation of a closed case."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5, description="1 (very unsatisfied) … 5 (very satisfied).")


class CasePage(BaseModel):
    """One page of cases, newest first."""

    items: list[CaseOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class MyItemOut(BaseModel):
    """A vendor's warning or case."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description="warning or case.")


class VerifyOut(BaseModel):
    """Whether a district's enforcement record holds."""

    district: District
    valid: bool
    entries: int
    broken_at: int | None = Field(description="1-based position of the first broken entry.")
    reason: str | None = Field(
        description="unreadable, out_of_sequence, chain_broken, altered or entries_missing."
    )
    head_hash: str | None


class RecordExport(BaseModel):
    """A district's record with its hashes, for an outside auditor."""

    district: District
    algorithm: str = "sha256 over canonical JSON (sorted keys, no spaces, UTF-8) without 'hash'"
    head: RecordRef | None
    entries: list[dict[str, Any] | None]
