"""The case loop and the record, as district offices and vendors work with them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from contracts.catalogue import District
from contracts.events import CaseEvaluated, CaseState
from inspection.adapters.enforcement_store import (
    EnforcementStore,
    Tx,
    case_from_json,
    case_to_json,
)
from inspection.adapters.keys import Keys
from inspection.domain import record
from inspection.domain.cases import Case, CaseAction, CaseError, evaluate, transition
from stallkit.auth import Principal, Role
from stallkit.clock import Clock
from stallkit.problems import ProblemError

EvidenceCheck = Callable[[Sequence[str], str], Awaitable[None]]


def case_view(case: Case, now: datetime) -> dict[str, Any]:
    """A case as the API shows it (JSON-ready)."""
    data: dict[str, Any] = json.loads(case_to_json(case))
    data["on_time"] = case.on_time(now)
    data["overdue"] = case.overdue(now)
    return data


def scope(caller: Principal, district: str) -> None:
    """Refuse staff of another district (administrators act anywhere)."""
    if caller.role is not Role.ADMIN and caller.district != district:
        raise ProblemError("other_district", 403)


def write_case(tx: Tx, keys: Keys, case: Case) -> None:
    """Queue the case's new state."""
    tx.set(keys.case(case.case_id), case_to_json(case))


class Casework:
    """Cases (read, step, evaluate, list), vendors' own items, and the record."""

    store: EnforcementStore
    keys: Keys
    clock: Clock
    check_evidence: EvidenceCheck | None

    # -- cases --------------------------------------------------------------------------------

    async def case(self, caller: Principal, case_id: str) -> Case:
        """A case the caller may read."""
        case = await self.store.get_case(case_id)
        if case is None:
            raise ProblemError("case_not_found", 404)
        if caller.role is Role.VENDOR:
            if case.vendor_id != caller.sub:
                raise ProblemError("case_not_found", 404)
        else:
            scope(caller, case.district)
        return case

    @staticmethod
    async def _load_case(tx: Tx, key: str) -> Case:
        raw = await tx.get(key)
        if raw is None:
            raise ProblemError("case_not_found", 404)
        return case_from_json(raw)

    async def act(
        self,
        caller: Principal,
        case_id: str,
        action: CaseAction,
        note: str = "",
        photos: tuple[str, ...] = (),
    ) -> Case:
        """Take a step of the case loop, recorded and published."""
        key = self.keys.case(case_id)

        async def decide(tx: Tx) -> Case:
            now = self.clock.now()
            case = await self._load_case(tx, key)
            if photos and self.check_evidence is not None:
                scope(caller, case.district)
                await self.check_evidence(photos, case.district)
            try:
                changed, step = transition(
                    case,
                    action,
                    actor_id=caller.sub,
                    role=caller.role,
                    district=caller.district,
                    now=now,
                    note=note,
                    photos=photos,
                )
            except CaseError as exc:
                raise ProblemError(exc.code, exc.status, **exc.extra) from None
            write_case(tx, self.keys, changed)
            await tx.append(
                case.district,
                at=now,
                kind="case_" + action.value,
                ref=case_id,
                data={
                    "case_id": case_id,
                    "action": action.value,
                    "from_state": case.state.value,
                    "to_state": changed.state.value,
                    "actor_id": caller.sub,
                    "role": caller.role.value,
                    "note": note,
                    "photos": list(photos),
                    "on_time": changed.on_time(now),
                },
            )
            tx.publish(
                step.event(
                    market_id=case.market_id,
                    district=case.district,
                    case_id=case_id,
                    from_state=case.state,
                    to_state=changed.state,
                    actor_id=caller.sub,
                    note=note,
                    on_time=changed.on_time(now),
                ),
                now,
            )
            return changed

        return await self.store.run(decide, watch=[key])

    async def evaluate(self, caller: Principal, case_id: str, score: int) -> Case:
        """Record the evaluation of a closed case (once)."""
        key = self.keys.case(case_id)

        async def decide(tx: Tx) -> Case:
            now = self.clock.now()
            case = await self._load_case(tx, key)
            try:
                changed = evaluate(
                    case, score, actor_id=caller.sub, role=caller.role, district=caller.district
                )
            except CaseError as exc:
                raise ProblemError(exc.code, exc.status, **exc.extra) from None
            write_case(tx, self.keys, changed)
            await tx.append(
                case.district,
                at=now,
                kind="case_evaluated",
                ref=case_id,
                data={"case_id": case_id, "score": score, "by_role": caller.role.value},
            )
            tx.publish(
                CaseEvaluated(
                    market_id=case.market_id,
                    district=case.district,
                    case_id=case_id,
                    score=score,
                    by_role=caller.role.value,
                ),
                now,
            )
            return changed

        return await self.store.run(decide, watch=[key])

    async def cases(
        self,
        caller: Principal,
        *,
        district: str | None,
        state: CaseState | None,
        violation: str | None,
        overdue: bool | None,
        opened_from: datetime | None,
        opened_to: datetime | None,
    ) -> list[Case]:
        """Cases the caller may read, filtered, newest first."""
        if caller.role is not Role.ADMIN:
            if district is not None and district != caller.district:
                raise ProblemError("other_district", 403)
            districts = [caller.district or ""]
        elif district is not None:
            districts = [district]
        else:
            districts = await self._districts()
        now = self.clock.now()
        found: list[Case] = []
        for name in districts:
            for case in await self.store.get_cases(await self.store.district_case_ids(name)):
                if state is not None and case.state is not state:
                    continue
                if violation is not None and case.violation != violation:
                    continue
                if overdue is not None and case.overdue(now) != overdue:
                    continue
                if opened_from is not None and case.opened_at < opened_from:
                    continue
                if opened_to is not None and case.opened_at >= opened_to:
                    continue
                found.append(case)
        found.sort(key=lambda c: (c.opened_at, c.case_id), reverse=True)
        return found

    async def _districts(self) -> list[str]:
        return [d.value for d in District]

    async def my_items(self, vendor_id: str) -> list[dict[str, Any]]:
        """A vendor's own warnings and cases, newest first."""
        now = self.clock.now()
        items = await self.store.subject_items(vendor_id)
        out = []
        for item in items:
            if "case_id" in item and "warning_id" not in item:
                case = await self.store.get_case(item["case_id"])
                if case is not None:
                    out.append({"kind": "case", **case_view(case, now)})
            else:
                out.append(item)
        return out

    # -- the record ---------------------------------------------------------------------------

    async def verify_record(self, caller: Principal, district: str) -> record.Verdict:
        """Recompute a district's chain."""
        scope(caller, district)
        entries = await self.store.record_entries(district)
        return record.verify(entries, await self.store.record_head(district))

    async def export_record(self, caller: Principal, district: str) -> list[dict[str, Any] | None]:
        """A district's record as stored, with its hashes."""
        scope(caller, district)
        return await self.store.record_entries(district)
