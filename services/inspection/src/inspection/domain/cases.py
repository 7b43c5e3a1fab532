"""The closed case loop (发现—上报—派遣—处置—核实—评价) as one explicit transition table."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts.events import (
    CaseClosed,
    CaseDispatched,
    CaseFiled,
    CaseHandled,
    CaseSentBack,
    CaseState,
    CaseTransitioned,
    CaseVerified,
)
from stallkit.auth import Role


class CaseAction(StrEnum):
    """What staff do to a case."""

    FILE = "file"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    VERIFY = "verify"
    SEND_BACK = "send_back"
    CLOSE = "close"


@dataclass(frozen=True)
class Step:
    """One allowed transition: where it leads, who may take it, the event it publishes."""

    to: CaseState
    roles: frozenset[Role]
    event: type[CaseTransitioned]
    not_by_handler: bool = False


_OFFICE = frozenset({Role.DISTRICT, Role.ADMIN})

#: (state, action) → step. Anything else is an illegal transition. Patrols report (a scan or a
#: street report opens the case); the district office files, dispatches, handles, verifies and
#: closes; whoever handled a case cannot verify it or send it back.
TRANSITIONS: dict[tuple[CaseState, CaseAction], Step] = {
    (CaseState.REPORTED, CaseAction.FILE): Step(CaseState.FILED, _OFFICE, CaseFiled),
    (CaseState.FILED, CaseAction.DISPATCH): Step(CaseState.DISPATCHED, _OFFICE, CaseDispatched),
    (CaseState.DISPATCHED, CaseAction.HANDLE): Step(CaseState.HANDLED, _OFFICE, CaseHandled),
    (CaseState.HANDLED, CaseAction.VERIFY): Step(
        CaseState.VERIFIED, _OFFICE, CaseVerified, not_by_handler=True
    ),
    (CaseState.HANDLED, CaseAction.SEND_BACK): Step(
        CaseState.DISPATCHED, _OFFICE, CaseSentBack, not_by_handler=True
    ),
    (CaseState.VERIFIED, CaseAction.CLOSE): Step(CaseState.CLOSED, _OFFICE, CaseClosed),
}

#: States in which the case is still waiting for its disposal.
AWAITING_DISPOSAL = frozenset({CaseState.REPORTED, CaseState.FILED, CaseState.DISPATCHED})


class CaseError(Exception):
    """A refused case action, with a stable code and an HTTP status."""

    def __init__(self, code: str, status: int, **extra: Any):
        super().__init__(code)
        self.code = code
        self.status = status
        self.extra = extra


@dataclass(frozen=True)
class HistoryItem:
    """One step of a case's history."""

    action: str
    from_state: CaseState | None
    to_state: CaseState
    actor_id: str
    role: str
    at: datetime
    note: str = ""
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """A case: what was seen, where, about whom, and how far it went."""

    case_id: str
    district: str
    market_id: str
    stall_id: str | None
    subject_id: str
    vendor_id: str | None
    violation: str
    penalty_min_cny: int
    penalty_max_cny: int
    opened_at: datetime
    observed_at: datetime
    deadline: datetime
    source_id: str
    state: CaseState = CaseState.REPORTED
    handled_by: str | None = None
    handled_at: datetime | None = None
    evaluation: int | None = None
    evaluated_by: str | None = None
    lat: float | None = None
    lon: float | None = None
    history: tuple[HistoryItem, ...] = field(default_factory=tuple)

    def on_time(self, now: datetime) -> bool:
        """Handled by the deadline; or, still waiting, not past it yet."""
        if self.handled_at is not None and self.state not in AWAITING_DISPOSAL:
            return self.handled_at <= self.deadline
        return now <= self.deadline

    def overdue(self, now: datetime) -> bool:
        """Past its deadline and still waiting for its disposal."""
        return self.state in AWAITING_DISPOSAL and now > self.deadline


def transition(
    case: Case,
    action: CaseAction,
    *,
    actor_id: str,
    role: Role,
    district: str | None,
    now: datetime,
    note: str = "",
    photos: tuple[str, ...] = (),
) -> tuple[Case, Step]:
    """The case after ``action`` by the actor; CaseError if the table or the rules refuse it."""
    if role is not Role.ADMIN and district != case.district:
        raise CaseError("other_district", 403)
    step = TRANSITIONS.get((case.state, action))
    if step is None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is case.state)
        raise CaseError("illegal_transition", 409, state=case.state.value, allowed=allowed)
    if role not in step.roles:
        raise CaseError("role_not_allowed", 403, action=action.value)
    if step.not_by_handler and case.handled_by == actor_id:
        raise CaseError("handler_cannot_verify", 403)
    item = HistoryItem(action.value, case.state, step.to, actor_id, role.value, now, note, photos)
    changed = replace(case, state=step.to, history=(*case.history, item))
    if step.to is CaseState.HANDLED:
        changed = replace(changed, handled_by=actor_id, handled_at=now)
    return changed, step


def evaluate(case: Case, score: int, *, actor_id: str, role: Role, district: str | None) -> Case:
    """The closed case with its evaluation (once): by its vendor, or the district office."""
    if role is Role.VENDOR:
        if case.vendor_id != actor_id:
            raise CaseError("case_not_found", 404)
    elif role is not Role.ADMIN and (role is not Role.DISTRICT or district != case.district):
        raise CaseError("other_district", 403)
    if case.state is not CaseState.CLOSED:
        raise CaseError("case_not_closed", 409, state=case.state.value)
    if case.evaluation is not None:
        raise CaseError("already_evaluated", 409)
    if not 1 <= score <= 5:
        raise CaseError("score_out_of_range", 422)
    return replace(case, evaluation=score, evaluated_by=role.value)
