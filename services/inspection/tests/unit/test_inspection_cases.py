"""The case loop: which step each role may take in each state, and the handler rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.events import CaseState
from inspection.domain.cases import Case, CaseAction, CaseError, evaluate, transition
from stallkit.auth import Role

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OFFICER, CHECKER = "district-xz-1", "district-xz-2"


def new_case() -> Case:
    return Case(
        case_id="cs_0000000000000001",
        district="xiangzhou",
        market_id="XZ-03",
        stall_id="XZ-03-A017",
        subject_id="vd_alice",
        vendor_id="vd_alice",
        violation="cooking_fumes",
        penalty_min_cny=500,
        penalty_max_cny=5000,
        opened_at=T0,
        observed_at=T0,
        deadline=T0 + timedelta(hours=72),
        source_id="sc_1",
    )


def step(case: Case, action: CaseAction, actor: str = OFFICER, role: Role = Role.DISTRICT,
         district: str | None = "xiangzhou", hours: float = 1) -> Case:  # fmt: skip
    changed, _ = transition(
        case, action, actor_id=actor, role=role, district=district,
        now=T0 + timedelta(hours=hours),
    )  # fmt: skip
    return changed


def test_the_whole_loop_runs_to_closed_and_keeps_its_history() -> None:
    case = new_case()
    for action in (CaseAction.FILE, CaseAction.DISPATCH, CaseAction.HANDLE):
        case = step(case, action)
    case = step(case, CaseAction.VERIFY, actor=CHECKER)
    case = step(case, CaseAction.CLOSE)
    assert case.state is CaseState.CLOSED
    assert [h.to_state for h in case.history] == [
        CaseState.FILED, CaseState.DISPATCHED, CaseState.HANDLED, CaseState.VERIFIED,
        CaseState.CLOSED,
    ]  # fmt: skip
    assert case.handled_by == OFFICER
    assert case.on_time(T0 + timedelta(days=30))


def test_verification_can_send_a_case_back_for_another_disposal() -> None:
    case = new_case()
    for action in (CaseAction.FILE, CaseAction.DISPATCH, CaseAction.HANDLE):
        case = step(case, action)
    case = step(case, CaseAction.SEND_BACK, actor=CHECKER)
    assert case.state is CaseState.DISPATCHED
    case = step(case, CaseAction.HANDLE, actor=CHECKER, hours=80)
    assert case.handled_by == CHECKER
    assert not case.on_time(T0 + timedelta(hours=81))  # handled after its 72 h deadline
    with pytest.raises(CaseError) as refused:
        step(case, CaseAction.VERIFY, actor=CHECKER)
    assert refused.value.code == "handler_cannot_verify"
    assert step(case, CaseAction.VERIFY, actor=OFFICER).state is CaseState.VERIFIED


ALL_STATES_ACTIONS = [(s, a) for s in CaseState for a in CaseAction]
ALLOWED = {
    (CaseState.REPORTED, CaseAction.FILE),
    (CaseState.FILED, CaseAction.DISPATCH),
    (CaseState.DISPATCHED, CaseAction.HANDLE),
    (CaseState.HANDLED, CaseAction.VERIFY),
    (CaseState.HANDLED, CaseAction.SEND_BACK),
    (CaseState.VERIFIED, CaseAction.CLOSE),
}


def reach(state: CaseState) -> Case:
    case = new_case()
    path = [CaseAction.FILE, CaseAction.DISPATCH, CaseAction.HANDLE, CaseAction.VERIFY,
            CaseAction.CLOSE]  # fmt: skip
    order = list(CaseState)
    for action in path[: order.index(state)]:
        case = step(case, action, actor=CHECKER if action is CaseAction.VERIFY else OFFICER)
    assert case.state is state
    return case


@pytest.mark.parametrize(("state", "action"), ALL_STATES_ACTIONS)
@pytest.mark.parametrize("role", [Role.DISTRICT, Role.ADMIN, Role.PATROL, Role.VENDOR])
def test_each_step_is_allowed_only_from_its_state_and_only_to_the_office(
    state: CaseState, action: CaseAction, role: Role
) -> None:
    case = reach(state)
    district = None if role is Role.VENDOR else "xiangzhou"
    allowed = (state, action) in ALLOWED and role in (Role.DISTRICT, Role.ADMIN)
    if allowed:
        changed = step(case, action, actor=CHECKER, role=role, district=district)
        assert changed.state is not state or action is CaseAction.SEND_BACK
        return
    with pytest.raises(CaseError) as refused:
        step(case, action, actor=CHECKER, role=role, district=district)
    if (state, action) not in ALLOWED:
        assert refused.value.code in ("illegal_transition", "other_district")
    else:
        assert refused.value.code in ("role_not_allowed", "other_district")
        assert refused.value.status == 403


def test_staff_of_another_district_can_take_no_step() -> None:
    with pytest.raises(CaseError) as refused:
        step(new_case(), CaseAction.FILE, district="doumen")
    assert (refused.value.code, refused.value.status) == ("other_district", 403)
    assert (
        step(new_case(), CaseAction.FILE, role=Role.ADMIN, district=None).state is CaseState.FILED
    )


def test_a_closed_case_is_evaluated_once_by_its_vendor_or_its_office() -> None:
    with pytest.raises(CaseError) as refused:
        evaluate(new_case(), 5, actor_id="vd_alice", role=Role.VENDOR, district=None)
    assert refused.value.code == "case_not_closed"
    closed = reach(CaseState.CLOSED)
    with pytest.raises(CaseError) as refused:
        evaluate(closed, 5, actor_id="vd_bob", role=Role.VENDOR, district=None)
    assert refused.value.code == "case_not_found"
    rated = evaluate(closed, 4, actor_id="vd_alice", role=Role.VENDOR, district=None)
    assert rated.evaluation == 4
    with pytest.raises(CaseError) as refused:
        evaluate(rated, 5, actor_id="district-xz-1", role=Role.DISTRICT, district="xiangzhou")
    assert refused.value.code == "already_evaluated"


def test_a_case_waiting_past_its_deadline_is_overdue() -> None:
    case = new_case()
    assert not case.overdue(T0 + timedelta(hours=71))
    assert case.overdue(T0 + timedelta(hours=73))
    assert not case.on_time(T0 + timedelta(hours=73))
    handled = step(step(step(case, CaseAction.FILE), CaseAction.DISPATCH), CaseAction.HANDLE)
    assert not handled.overdue(T0 + timedelta(hours=100))
