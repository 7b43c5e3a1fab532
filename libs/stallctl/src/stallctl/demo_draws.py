"""``stallctl demo``: the lottery of the day.

In each district, vendors apply for one oversubscribed window two days on (more applicants than
stalls, priority groups among them, some ranking stalls, some taking any stall of their
category). Allocation draws it at 20:00 (its defaults: ``ALLOCATION_DRAW_TIME``, D-2), books the
winners and publishes the draw; the demo then reads every applicant's outcome and re-runs the
draw from what was published, as ``stallctl draw verify`` does.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from contracts.catalogue import Catalogue, Stall
from contracts.lottery import DrawPublication
from stallctl.demo_driver import Driver, problem_code
from stallkit.clock import MARKET_TZ, local_datetime

if TYPE_CHECKING:
    from stallctl.demo import DemoVendor

#: Allocation's defaults: the draw of a window runs at 20:00 two days before it.
DRAW_DAYS_BEFORE = 2
DRAW_MINUTE = 20 * 60
#: Applicants per stall of a drawn window (where enough vendors may apply).
OVERSUBSCRIPTION = 1.5
#: The demo's day runs this long past the draw: the draws are run, read and re-run.
AFTER_THE_DRAW = timedelta(minutes=30)


@dataclass(frozen=True)
class Application:
    """One vendor's application: stalls ranked best first (empty: any permitted stall)."""

    vendor_id: str
    priority: bool
    stall_ids: tuple[str, ...]
    at: datetime


@dataclass(frozen=True)
class PlannedDraw:
    """A window two days on, in one market of a district, that more vendors apply for than it
    has stalls."""

    district: str
    market_id: str
    day: date
    window_id: str
    stalls: int
    draw_at: datetime
    applications: tuple[Application, ...]

    @property
    def path(self) -> str:
        """``market/date/window``, as the draw's URL names it."""
        return f"{self.market_id}/{self.day.isoformat()}/{self.window_id}"


def plan_draws(
    catalogue: Catalogue,
    day: date,
    vendors: Sequence[DemoVendor],
    rng: random.Random,
    *,
    apply_from: datetime,
) -> list[PlannedDraw]:
    """One draw per district: the market with the fewest stalls among those open two days on.

    Applicants are vendors whose permits allow one of its stalls, each in one draw only (two
    windows at the same hours would overlap); they apply between ``apply_from`` and two hours
    before the draw.
    """
    target = day + timedelta(days=DRAW_DAYS_BEFORE)
    draw_at = local_datetime(day, DRAW_MINUTE)
    latest = draw_at - timedelta(hours=2)
    stalls: dict[str, list[Stall]] = {}
    for stall in catalogue.stalls:
        if stall.active:
            stalls.setdefault(stall.market_id, []).append(stall)
    taken: set[str] = set()
    draws: list[PlannedDraw] = []
    districts = list(dict.fromkeys(m.district.value for m in catalogue.markets))
    for district in districts:
        candidates = [
            (len(stalls.get(m.id, ())), m.id, w.id)
            for m in catalogue.markets
            if m.district.value == district
            for w in m.windows[:1]
            if target.isoweekday() in w.days and stalls.get(m.id)
        ]
        if not candidates:
            continue
        count, market_id, window_id = min(candidates)
        market_stalls = stalls[market_id]

        def permitted(vendor: DemoVendor, pool: list[Stall] = market_stalls) -> list[str]:
            return [s.id for s in pool if vendor.may_book(s.category, target)]

        eligible = [v for v in vendors if v.id not in taken and permitted(v)]
        chosen = rng.sample(eligible, min(len(eligible), math.ceil(count * OVERSUBSCRIPTION)))
        applications = []
        for vendor in chosen:
            taken.add(vendor.id)
            allowed = permitted(vendor)
            ranked = () if rng.random() < 0.5 else tuple(rng.sample(allowed, min(3, len(allowed))))
            at = apply_from + (latest - apply_from) * rng.random()
            applications.append(
                Application(vendor.id, vendor.priority_group.is_priority, ranked, at)
            )
        applications.sort(key=lambda a: a.at)
        draws.append(
            PlannedDraw(district, market_id, target, window_id, count, draw_at, tuple(applications))
        )
    return draws


@dataclass
class DrawOutcome:
    """What became of a planned draw: the answers to the applications, the draw as published
    and re-run, and each applicant's outcome as allocation tells it."""

    applied: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    state: str = "not run"
    verified: bool | None = None
    reasons: list[str] = field(default_factory=list)
    awards: int = 0
    priority_awards: int = 0
    eligible: int = 0
    #: Applicants by their outcome (won, lost, void, pending).
    statuses: Counter[str] = field(default_factory=Counter)
    bookings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For the demo's JSON summary."""
        return {
            "applied": self.applied,
            "refused": dict(self.refused),
            "state": self.state,
            "verified": self.verified,
            "reasons": self.reasons,
            "awards": self.awards,
            "priority_awards": self.priority_awards,
            "eligible": self.eligible,
            "statuses": dict(self.statuses),
            "bookings": self.bookings,
        }


class DrawPlayer:
    """Sends a planned draw's applications, then reads the draw allocation ran and re-runs it."""

    def __init__(self, driver: Driver, draw: PlannedDraw):
        self.driver, self.draw = driver, draw
        self.outcome = DrawOutcome()

    async def apply(self, application: Application) -> None:
        """One application, at its time."""
        driver, draw = self.driver, self.draw
        if not await driver.until(application.at):
            return
        response = await driver.request(
            "POST",
            f"{driver.at('allocation')}/v1/applications",
            headers=driver.signer.vendor(application.vendor_id),
            json={
                "market_id": draw.market_id,
                "date": draw.day.isoformat(),
                "window_id": draw.window_id,
                "stall_ids": list(application.stall_ids),
            },
            background=True,
        )
        if response.status_code in (200, 201):
            self.outcome.applied += 1
        else:
            self.outcome.refused[problem_code(response)] += 1

    async def follow(self) -> None:
        """After the draw: the published draw re-run, then every applicant's outcome."""
        driver, draw = self.driver, self.draw
        if not await driver.until(draw.draw_at + timedelta(minutes=1)):
            return
        url = f"{driver.at('allocation')}/v1/draws/{draw.path}"
        published: dict[str, Any] = {}

        async def done() -> bool:
            response = await driver.request("GET", url, headers={}, background=True)
            if response.status_code != 200:
                return False
            published.update(response.json())
            return published.get("state") == "done"

        await driver.wait_for(done, timeout=60.0, pause=0.5)
        self.outcome.state = str(published.get("state", "unknown"))
        if published.get("inputs") is not None and published.get("result") is not None:
            publication = DrawPublication.model_validate(
                {k: published[k] for k in ("commitment", "inputs", "result")}
            )
            verdict = publication.verify()
            self.outcome.verified, self.outcome.reasons = verdict.ok, list(verdict.reasons)
            priority = {a.pseudonym for a in publication.inputs.applicants if a.priority}
            awards = publication.result.awards
            self.outcome.awards = len(awards)
            self.outcome.priority_awards = sum(1 for a in awards if a.pseudonym in priority)
            self.outcome.eligible = sum(1 for a in publication.inputs.applicants if a.eligible)
        for application in draw.applications:
            await self._outcome_of(application.vendor_id)
        self._tell()

    async def _outcome_of(self, vendor_id: str) -> None:
        driver, draw = self.driver, self.draw
        response = await driver.request(
            "GET",
            f"{driver.at('allocation')}/v1/applications",
            headers=driver.signer.vendor(vendor_id),
            background=True,
        )
        if response.status_code != 200:
            return
        for view in response.json():
            if (view["market_id"], view["date"], view["window_id"]) == (
                draw.market_id,
                draw.day.isoformat(),
                draw.window_id,
            ):
                self.outcome.statuses[view["status"]] += 1
                if view.get("booking_id"):
                    self.outcome.bookings.append(view["booking_id"])

    def _tell(self) -> None:
        draw, out = self.draw, self.outcome
        verdict = {True: "verified ✓", False: "does NOT verify ✗", None: "not published"}
        self.driver.console.say(
            f"  🎲 {draw.draw_at.astimezone(MARKET_TZ):%H:%M} 摇号 draw of {draw.market_id} "
            f"{draw.day:%a %m-%d} {draw.window_id}: {out.applied} applicants for {draw.stalls} "
            f"stalls → {out.awards} won ({out.priority_awards} priority), "
            f"{out.statuses.get('lost', 0)} not drawn; re-run from the published inputs: "
            f"{verdict[out.verified]}"
        )


def draw_lines(players: Sequence[DrawPlayer]) -> list[str]:
    """The lottery's lines under the report's tables."""
    if not players:
        return []
    parts = []
    for player in players:
        draw, out = player.draw, player.outcome
        ok = {True: "✓", False: "✗", None: "?"}[out.verified]
        parts.append(
            f"{draw.market_id} {draw.window_id} {out.awards}/{draw.stalls} of {out.applied} "
            f"({out.priority_awards} priority) {ok}"
        )
    day = players[0].draw.day
    return [f"摇号 lottery for {day:%a %Y-%m-%d} (drawn 20:00 today): " + "; ".join(parts)]
