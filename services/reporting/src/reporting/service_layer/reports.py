"""Reports: the figures of a city, a district or a market over a day or a date range, and the
fairness figures of an ISO week."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from contracts.catalogue import DISTRICT_NAMES, District
from reporting.adapters.facts_store import FactsStore
from reporting.domain.fairness import FairnessTally, merged, tally, week_dates, week_label
from reporting.domain.figures import (
    Figures,
    MarketFacts,
    dates_between,
    market_day_figures,
    total,
)
from stallkit.auth import Principal, Role
from stallkit.clock import MARKET_TZ, Clock
from stallkit.problems import ProblemError

#: The longest date range one report covers.
MAX_REPORT_DAYS = 366


@dataclass(frozen=True)
class ReportScope:
    """What a report is about: the city, a district or a market."""

    kind: str  # city, district, market
    id: str | None
    name_zh: str
    name_en: str
    district: str | None

    def as_json(self) -> dict[str, Any]:
        """The scope as reports show it."""
        return {"kind": self.kind, "id": self.id, "name_zh": self.name_zh, "name_en": self.name_en}


@dataclass
class Report:
    """The figures of a scope: in all, per market, per day."""

    scope: ReportScope
    first: date
    last: date
    generated_at: datetime
    total: Figures
    markets: list[tuple[MarketFacts, Figures]]
    days: list[tuple[date, Figures]]

    def as_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "scope": self.scope.as_json(),
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "total": self.total.as_json(),
            "markets": [
                {
                    "market_id": m.market_id,
                    "name_zh": m.name_zh,
                    "name_en": m.name_en,
                    "district": m.district,
                    "figures": f.as_json(),
                }
                for m, f in self.markets
            ],
            "days": [{"date": d.isoformat(), "figures": f.as_json()} for d, f in self.days],
        }


@dataclass
class FairnessReport:
    """The fairness figures of a scope over one ISO week: in all and per market."""

    scope: ReportScope
    monday: date
    generated_at: datetime
    total: FairnessTally
    markets: list[tuple[MarketFacts, FairnessTally]]

    @property
    def week(self) -> str:
        """The week as ``2026-W49``."""
        return week_label(self.monday)

    @property
    def sunday(self) -> date:
        """The week's last day."""
        return self.monday + timedelta(days=6)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "scope": self.scope.as_json(),
            "week": self.week,
            "from": self.monday.isoformat(),
            "to": self.sunday.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "total": self.total.as_json(),
            "markets": [
                {
                    "market_id": m.market_id,
                    "name_zh": m.name_zh,
                    "name_en": m.name_en,
                    "district": m.district,
                    "figures": t.as_json(),
                }
                for m, t in self.markets
            ],
        }


def may_read(caller: Principal, district: str | None) -> str | None:
    """The district a caller's report is about: a district office reads only its own."""
    if caller.role is Role.ADMIN:
        return district
    if caller.role is Role.DISTRICT:
        if district is not None and district != caller.district:
            raise ProblemError("other_district", 403, "a district office reads its own district")
        return caller.district
    raise ProblemError("forbidden", 403, "reports are for district offices and administrators")


class Reports:
    """Answers for reports, from the facts in ``store``."""

    def __init__(self, store: FactsStore, clock: Clock):
        self.store = store
        self.clock = clock

    async def _scope(
        self, district: str | None, market_id: str | None
    ) -> tuple[ReportScope, list[MarketFacts]]:
        markets = await self.store.markets()
        if market_id is not None:
            market = markets.get(market_id)
            if market is None or (district is not None and market.district != district):
                raise ProblemError("market_unknown", 404, f"no market {market_id}")
            scope = ReportScope(
                "market", market.market_id, market.name_zh, market.name_en, market.district
            )
            return scope, [market]
        if district is not None:
            zh, en = DISTRICT_NAMES[District(district)]
            chosen = [m for m in markets.values() if m.district == district]
            return ReportScope("district", district, zh, en, district), chosen
        return ReportScope("city", None, "珠海市", "Zhuhai", None), list(markets.values())

    async def report(
        self,
        caller: Principal,
        *,
        district: str | None,
        market_id: str | None,
        first: date,
        last: date,
    ) -> Report:
        """The figures of the caller's scope from ``first`` to ``last`` (local dates)."""
        if last < first:
            raise ProblemError("invalid_date_range", 422, "'to' is before 'from'")
        if (last - first).days + 1 > MAX_REPORT_DAYS:
            raise ProblemError(
                "date_range_too_long", 422, f"at most {MAX_REPORT_DAYS} days in one report"
            )
        district = may_read(caller, district)
        scope, markets = await self._scope(district, market_id)
        days = dates_between(first, last)
        slots = [(m.market_id, d) for m in markets for d in days]
        facts, cases = await self.store.days(slots)
        now = self.clock.now()
        per_slot = {
            (m.market_id, d): market_day_figures(m, d, facts[(m.market_id, d)], cases, now)
            for m in markets
            for d in days
        }
        by_market = [(m, total(per_slot[(m.market_id, d)] for d in days)) for m in markets]
        by_day = [(d, total(per_slot[(m.market_id, d)] for m in markets)) for d in days]
        return Report(
            scope=scope,
            first=first,
            last=last,
            generated_at=now,
            total=total(f for _, f in by_market),
            markets=by_market,
            days=by_day,
        )

    async def fairness(
        self, caller: Principal, *, district: str | None, monday: date
    ) -> FairnessReport:
        """The fairness figures of the caller's scope over the ISO week starting ``monday``."""
        district = may_read(caller, district)
        scope, markets = await self._scope(district, None)
        days = week_dates(monday)
        slots = [(m.market_id, d) for m in markets for d in days]
        facts, _ = await self.store.days(slots, with_cases=False)
        by_market = [(m, tally(facts[(m.market_id, d)] for d in days)) for m in markets]
        return FairnessReport(
            scope=scope,
            monday=monday,
            generated_at=self.clock.now(),
            total=merged(t for _, t in by_market),
            markets=by_market,
        )

    async def live(self, caller: Principal, district: str | None) -> dict[str, Any]:
        """The markets of the caller's scope with the window running now and its occupancy."""
        district = may_read(caller, district)
        _, markets = await self._scope(district, None)
        now = self.clock.now()
        local = now.astimezone(MARKET_TZ)
        running = {m.market_id: _running_window(m, local) for m in markets}
        slots = sorted({(m.market_id, w[0]) for m in markets if (w := running[m.market_id])})
        facts, _ = await self.store.days(slots)
        rows = []
        for market in markets:
            window = running[market.market_id]
            booked = checked_in = 0
            if window is not None:
                day_facts = facts[(market.market_id, window[0])]
                for b in day_facts.bookings.values():
                    if not b.created or b.window_id != window[1]:
                        continue
                    if not (b.cancelled or b.ended_by_suspension):
                        booked += 1
                    checked_in += b.checked_in_at is not None
            rows.append(
                {
                    "market_id": market.market_id,
                    "name_zh": market.name_zh,
                    "name_en": market.name_en,
                    "district": market.district,
                    "window": None
                    if window is None
                    else {
                        "window_id": window[1],
                        "starts_at": window[2].isoformat(),
                        "ends_at": window[3].isoformat(),
                    },
                    "stalls": market.active_stalls,
                    "booked": booked,
                    "checked_in": checked_in,
                }
            )
        return {"at": now.isoformat(), "markets": rows}


def _running_window(
    market: MarketFacts, local: datetime
) -> tuple[date, str, datetime, datetime] | None:
    """The window of ``market`` running at ``local`` (day, id, start, end), if any."""
    for day in (local.date(), local.date() - timedelta(days=1)):
        if market.is_suspended(day):
            continue
        midnight = datetime(day.year, day.month, day.day, tzinfo=MARKET_TZ)
        for w in market.windows_on(day):
            starts = midnight + timedelta(minutes=w.start_minute)
            end_minute = w.end_minute if w.end_minute > w.start_minute else w.end_minute + 1440
            ends = midnight + timedelta(minutes=end_minute)
            if starts <= local < ends:
                return day, w.window_id, starts, ends
    return None
