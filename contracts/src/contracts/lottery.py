"""The lottery of an oversubscribed market window: a pure, published, re-runnable draw.

Anyone holding the published inputs can re-run a draw and compare it with the published result
(``stallctl draw verify``), so the algorithm is part of the contract, not of allocation.

- **Commit, then reveal.** When applications open, the SHA-256 of the seed is published
  (:func:`seed_commitment`); at the draw the seed itself is published with the inputs. A seed
  that does not hash to the commitment does not verify.
- **Order.** Each applicant's place is HMAC-SHA256(seed, pseudonym): a random order fixed by the
  seed, and the same whatever order the inputs are listed in.
- **Priority share first.** Priority applicants are drawn first, in that order, until
  ``held_count`` of them have a stall; then every applicant still without one, in the same order,
  for the rest. A standard applicant never takes a stall that the priority share still needs.
- **Stalls.** A drawn applicant gets the highest-ranked of their preferences that is still free
  and of a category they are permitted; with no preferences ("any stall of my category"), the
  first free permitted stall by id. An applicant the booking rules refuse for this window
  (overlap, weekly cap, certificate, suspension: ``eligible`` false, decided by allocation when
  the applications close) is drawn but gets nothing. Nobody gets two stalls.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.catalogue import Category

MAX_PREFERENCES = 3
DRAW_VERSION: Literal[1] = 1

HexSeed = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DrawStall(_Frozen):
    """A stall of the window that the draw can give."""

    stall_id: str = Field(min_length=1, max_length=64)
    category: Category


class Applicant(_Frozen):
    """One application, as published: a pseudonym, never the vendor id."""

    pseudonym: Pseudonym
    priority: bool
    #: Categories the vendor is verified for.
    categories: frozenset[Category]
    #: Up to three stall ids, best first; empty: any stall of a permitted category.
    preferences: tuple[str, ...] = Field(default=(), max_length=MAX_PREFERENCES)
    #: Whether the booking rules let this vendor book this window at all.
    eligible: bool = True

    @model_validator(mode="after")
    def _distinct_preferences(self) -> Applicant:
        if len(set(self.preferences)) != len(self.preferences):
            raise ValueError("a stall is ranked twice")
        return self


class DrawInputs(_Frozen):
    """Everything the draw depends on; published at the draw."""

    version: Literal[1] = DRAW_VERSION
    market_id: str
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    window_id: str
    seed: HexSeed
    #: How many stalls the priority share holds for priority applicants.
    held_count: int = Field(ge=0)
    stalls: tuple[DrawStall, ...]
    applicants: tuple[Applicant, ...]

    @model_validator(mode="after")
    def _consistent(self) -> DrawInputs:
        ids = [s.stall_id for s in self.stalls]
        if len(set(ids)) != len(ids):
            raise ValueError("a stall is listed twice")
        if self.held_count > len(ids):
            raise ValueError("held_count exceeds the stalls")
        names = [a.pseudonym for a in self.applicants]
        if len(set(names)) != len(names):
            raise ValueError("a pseudonym is listed twice")
        known = set(ids)
        for applicant in self.applicants:
            unknown = set(applicant.preferences) - known
            if unknown:
                raise ValueError(f"{applicant.pseudonym} ranks unknown stalls {sorted(unknown)}")
        return self


class Award(_Frozen):
    """A stall won."""

    pseudonym: str
    stall_id: str
    #: 1: in the priority share; 2: in the draw for the rest.
    round: Literal[1, 2]


class DrawResult(_Frozen):
    """What a draw decided: the order, the awards, and who got nothing."""

    order: tuple[str, ...]
    awards: tuple[Award, ...]
    unplaced: tuple[str, ...]

    def digest(self) -> str:
        """SHA-256 of the result's canonical JSON: what a published result is compared by."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json"))).hexdigest()


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes that are hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seed_commitment(seed: str) -> str:
    """The SHA-256 of the seed's bytes, published when applications open."""
    return hashlib.sha256(bytes.fromhex(seed)).hexdigest()


def draw_order(seed: str, pseudonyms: list[str]) -> list[str]:
    """The applicants' order: by HMAC-SHA256(seed, pseudonym), then pseudonym (never tied)."""
    key = bytes.fromhex(seed)
    return sorted(pseudonyms, key=lambda p: (hmac.new(key, p.encode(), hashlib.sha256).digest(), p))


def draw(inputs: DrawInputs) -> DrawResult:
    """Run the draw (see the module's description). Pure: the same inputs, the same result."""
    by_name = {a.pseudonym: a for a in inputs.applicants}
    order = draw_order(inputs.seed, list(by_name))
    category_of = {s.stall_id: s.category for s in inputs.stalls}
    by_id_order = sorted(category_of)
    free = set(category_of)
    awards: list[Award] = []
    placed: set[str] = set()
    priority_placed = 0

    def pick(applicant: Applicant) -> str | None:
        if not applicant.eligible:
            return None
        ranked = applicant.preferences or tuple(by_id_order)
        for stall_id in ranked:
            if stall_id in free and category_of[stall_id] in applicant.categories:
                return stall_id
        return None

    def give(applicant: Applicant, stall_id: str, round_: Literal[1, 2]) -> None:
        nonlocal priority_placed
        free.discard(stall_id)
        placed.add(applicant.pseudonym)
        priority_placed += applicant.priority
        awards.append(Award(pseudonym=applicant.pseudonym, stall_id=stall_id, round=round_))

    for name in order:  # round 1: the priority share
        if priority_placed >= inputs.held_count:
            break
        applicant = by_name[name]
        if applicant.priority and (stall_id := pick(applicant)) is not None:
            give(applicant, stall_id, 1)
    for name in order:  # round 2: everyone still without a stall, for the rest
        applicant = by_name[name]
        if name in placed:
            continue
        still_held = max(0, inputs.held_count - priority_placed)
        if not applicant.priority and len(free) <= still_held:
            continue  # what is left is the priority share's
        if (stall_id := pick(applicant)) is not None:
            give(applicant, stall_id, 2)
    return DrawResult(
        order=tuple(order),
        awards=tuple(awards),
        unplaced=tuple(n for n in order if n not in placed),
    )


class Verdict(_Frozen):
    """What re-running a published draw found."""

    ok: bool
    reasons: tuple[str, ...] = ()


def verify(inputs: DrawInputs, commitment: str, published: DrawResult) -> Verdict:
    """Re-run the draw from the published inputs and compare it with the published result."""
    reasons = []
    if seed_commitment(inputs.seed) != commitment.lower():
        reasons.append("the seed does not hash to the commitment published before the draw")
    rerun = draw(inputs)
    if rerun.order != published.order:
        reasons.append("the order differs from the one the seed gives")
    if rerun.awards != published.awards:
        reasons.append("the stalls awarded differ from a re-run of the draw")
    if rerun.unplaced != published.unplaced:
        reasons.append("the applicants left without a stall differ from a re-run of the draw")
    return Verdict(ok=not reasons, reasons=tuple(reasons))


class DrawPublication(_Frozen):
    """A draw as published after it ran: the commitment made when applications opened, the
    inputs (seed revealed) and the result. ``stallctl draw verify`` checks one."""

    commitment: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: DrawInputs
    result: DrawResult

    def verify(self) -> Verdict:
        """Re-run the draw and compare (see :func:`verify`)."""
        return verify(self.inputs, self.commitment, self.result)
