"""Fairness figures against a real broker and redis-server: per district (and the city) and ISO
week they equal a recomputation from the raw events, whatever the duplicates and the order they
come in; a small district is checked by hand; CSV and XLSX say the same; a district reads only
its own; a week that is no ISO week is refused."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from openpyxl import load_workbook

from contracts.catalogue import Category, District, Location, Market, MarketWindow
from contracts.envelope import Event
from contracts.events import (
    BookingCancelled,
    BookingCreated,
    BookingNoShow,
    BookingSuspendedByMarket,
    DrawCompleted,
    DrawScheduled,
    MarketChanged,
)
from reporting.app import create_app
from reporting.config import ReportingSettings
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ
from stallkit.messaging import publish_event
from stalltest.tokens import dev_token

pytestmark = pytest.mark.integration

Serve = Callable[[Any], Awaitable[httpx.AsyncClient]]
Eventually = Callable[..., Awaitable[Any]]

NOW = datetime.now(UTC)
TODAY = NOW.astimezone(MARKET_TZ).date()
THIS_MONDAY = TODAY - timedelta(days=TODAY.weekday())
LAST_MONDAY = THIS_MONDAY - timedelta(days=7)


def iso_week(monday: date) -> str:
    """``2026-W49``."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def bearer(role: Role, district: str | None = None) -> dict[str, str]:
    """A staff token's header."""
    return {"Authorization": "Bearer " + dev_token(role, f"{role.value}-1", district=district)}


ADMIN = bearer(Role.ADMIN)
XIANGZHOU = bearer(Role.DISTRICT, "xiangzhou")
DOUMEN = bearer(Role.DISTRICT, "doumen")


@dataclass(frozen=True)
class Sent:
    """One event as published: its id and envelope time."""

    event: Event
    at: datetime
    event_id: str


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local time on ``day``, in UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MARKET_TZ).astimezone(UTC)


def market(market_id: str, district: District, windows: list[MarketWindow]) -> Market:
    """A market of the scene."""
    return Market(
        id=market_id,
        district=district,
        name_zh=f"{market_id} 公平性测试市场",
        name_en=f"{market_id} fairness market",
        location=Location(lat=22.2, lon=113.5),
        zones=[Category.COOKED_FOOD],
        windows=windows,
    )


EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]
EVENING = MarketWindow(
    id="evening", name_zh="夜市", name_en="Evening", days=EVERY_DAY,
    start=time(17, 30), end=time(22, 30),
)  # fmt: skip
MORNING = MarketWindow(
    id="morning", name_zh="早市", name_en="Morning", days=EVERY_DAY,
    start=time(7, 0), end=time(11, 0),
)  # fmt: skip
XZ_MARKETS = [
    market("XZ-81", District.XIANGZHOU, [EVENING]),
    market("XZ-82", District.XIANGZHOU, [MORNING, EVENING]),
]
DM_MARKET = market("DM-81", District.DOUMEN, [EVENING])
XZ = [m.id for m in XZ_MARKETS]
ALL = [*XZ, DM_MARKET.id]
#: Vendors who book in Xiangzhou (the first four are in a priority group), and vendors who only
#: ever apply in draws there (they win now and then).
POOL = [f"vd_f{n:02d}" for n in range(1, 15)]
PRIORITY = set(POOL[:4])
APPLY_ONLY = [f"vd_a{n:02d}" for n in range(1, 7)]
SEED = "0" * 64


class Scene:
    """Events with stable ids, in the order they happened."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.bookings = 0

    def send(self, event: Event, at: datetime) -> None:
        self.sent.append(Sent(event, at, f"evt-{len(self.sent) + 1:05d}"))

    def book(
        self, m: Market, window: MarketWindow, day: date, vendor: str, fate: str = "stands"
    ) -> None:
        """A booking and what became of it: stands, no_show, cancelled or suspended."""
        self.bookings += 1
        starts = local(day, window.start.hour, window.start.minute)
        common = {
            "market_id": m.id,
            "booking_id": f"bk_f{self.bookings:04d}",
            "vendor_id": vendor,
            "stall_id": f"{m.id}-A{self.bookings % 50:03d}",
            "date": day,
            "window_id": window.id,
        }
        created = BookingCreated(
            **common,
            category=Category.COOKED_FOOD,
            starts_at=starts,
            ends_at=local(day, window.end.hour, window.end.minute),
            priority=vendor in PRIORITY or vendor == "vd_dm_b",
        )
        self.send(created, starts - timedelta(days=2))
        if fate == "no_show":
            self.send(BookingNoShow(**common, no_shows_in_period=1), starts)
        elif fate == "cancelled":
            self.send(BookingCancelled(**common, late=True), starts - timedelta(hours=1))
        elif fate == "suspended":
            self.send(BookingSuspendedByMarket(**common, reason="台风 Typhoon"), starts)

    def draw(
        self, m: Market, window: MarketWindow, day: date, applicants: list[str], winners: list[str]
    ) -> None:
        """A draw: scheduled, then completed (winners' bookings are the caller's to send)."""
        draw_at = local(day, 12) - timedelta(days=2)
        ids = {"market_id": m.id, "date": day, "window_id": window.id}
        self.send(
            DrawScheduled(**ids, commitment=SEED, draw_at=draw_at), draw_at - timedelta(days=1)
        )
        priority = [a for a in applicants if a in PRIORITY or a == "vd_dm_b"]
        completed = DrawCompleted(
            **ids, seed=SEED, result_digest=SEED, stalls=len(winners),
            applicant_ids=applicants, priority_applicant_ids=priority, winner_ids=winners,
        )  # fmt: skip
        self.send(completed, draw_at)


def scene(rng: random.Random) -> list[Sent]:
    """Two weeks of bookings and draws in Xiangzhou (random) and one in Doumen (by hand)."""
    s = Scene()
    for m in [*XZ_MARKETS, DM_MARKET]:
        s.send(MarketChanged(market_id=m.id, market=m), local(LAST_MONDAY, 1) - timedelta(days=1))
    fates = ["stands"] * 8 + ["no_show"] * 2 + ["cancelled"] * 3 + ["suspended"] * 2
    for monday in (LAST_MONDAY, THIS_MONDAY):
        for m in XZ_MARKETS:
            for n in range(7):
                day = monday + timedelta(days=n)
                for w in m.windows:
                    if rng.random() < 0.3:  # oversubscribed: a draw, then its winners' bookings
                        applicants = rng.sample(POOL, rng.randint(2, 6))
                        applicants += rng.sample(APPLY_ONLY, rng.randint(1, 3))
                        rng.shuffle(applicants)
                        winners = rng.sample(applicants, rng.randint(1, min(3, len(applicants))))
                        s.draw(m, w, day, applicants, winners)
                        for vendor in winners:
                            s.book(m, w, day, vendor, rng.choice(fates))
                    else:
                        for vendor in rng.sample(POOL, rng.randint(0, 4)):
                            s.book(m, w, day, vendor, rng.choice(fates))
    # Doumen, last week, small enough to check by hand (see the test): a draw on Wednesday
    # (a, b, d apply; a and b win), a's and b's bookings that day, a's on Thursday, a no-show on
    # Friday, a suspended one on Saturday; c books on Tuesday and cancels.

    def weekday(n: int) -> date:
        return LAST_MONDAY + timedelta(days=n)

    s.draw(
        DM_MARKET, EVENING, weekday(2), ["vd_dm_a", "vd_dm_b", "vd_dm_d"], ["vd_dm_a", "vd_dm_b"]
    )
    s.book(DM_MARKET, EVENING, weekday(2), "vd_dm_a")
    s.book(DM_MARKET, EVENING, weekday(2), "vd_dm_b")
    s.book(DM_MARKET, EVENING, weekday(3), "vd_dm_a")
    s.book(DM_MARKET, EVENING, weekday(4), "vd_dm_a", "no_show")
    s.book(DM_MARKET, EVENING, weekday(5), "vd_dm_a", "suspended")
    s.book(DM_MARKET, EVENING, weekday(1), "vd_dm_c", "cancelled")
    # ... and a in Xiangzhou on Sunday, which the city adds to a's Doumen stall-days.
    s.book(XZ_MARKETS[0], EVENING, weekday(6), "vd_dm_a")
    return s.sent


# -- the recomputation: straight from the events, sharing no code with the service ------------


def recompute(sent: list[Sent], market_ids: list[str], monday: date) -> dict[str, Any]:
    """The fairness figures of ``market_ids`` in the ISO week of ``monday``, as the README
    defines them."""
    events = [s.event for s in {s.event_id: s for s in sent}.values()]  # duplicates are one
    week = {monday + timedelta(days=n) for n in range(7)}
    created = {
        e.booking_id: e
        for e in events
        if isinstance(e, BookingCreated) and e.market_id in market_ids and e.date in week
    }
    ended = {
        e.booking_id for e in events if isinstance(e, BookingCancelled | BookingSuspendedByMarket)
    }
    stood = [b for booking_id, b in created.items() if booking_id not in ended]
    draws = {
        (e.market_id, e.date, e.window_id): e
        for e in events
        if isinstance(e, DrawCompleted) and e.market_id in market_ids and e.date in week
    }
    applicants = {a for d in draws.values() for a in d.applicant_ids}
    winners = {w for d in draws.values() for w in d.winner_ids}
    active = {b.vendor_id for b in created.values()} | applicants
    per_vendor = [sum(1 for b in stood if b.vendor_id == v) for v in active]
    n, total = len(per_vendor), sum(per_vendor)
    # the definition itself: mean absolute difference over all ordered pairs / (2 × mean)
    differences = sum(abs(a - b) for a in per_vendor for b in per_vendor)
    priority = sum(1 for b in stood if b.priority)
    won = len(applicants & winners)
    return {
        "gini": None if n == 0 or total == 0 else round(differences / (2 * n * total), 4),
        "stall_days": total,
        "priority_stall_days": priority,
        "priority_stall_day_share": None if total == 0 else round(priority / total, 4),
        "active_vendors": n,
        "vendors_served": sum(1 for x in per_vendor if x > 0),
        "draws": len(draws),
        "applicants": len(applicants),
        "applicants_won": won,
        "applicant_win_share": None if not draws else round(won / len(applicants), 4),
    }


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sent() -> list[Sent]:
    """The scene of this module."""
    return scene(random.Random(20261130))


async def publish_shuffled(
    publisher: KafkaBroker, settings: ReportingSettings, sent: list[Sent]
) -> int:
    """Every event in a random order, a third of them twice; how many distinct events."""
    rng = random.Random(11)
    deliveries = list(sent) + [s for s in sent if rng.random() < 0.33]
    rng.shuffle(deliveries)
    for s in deliveries:
        await publish_event(publisher, settings, s.event, time=s.at, event_id=s.event_id)
    return len(sent)


async def test_fairness_figures_equal_a_recomputation_in_every_format(
    reporting_settings: ReportingSettings,
    publisher: KafkaBroker,
    serve: Serve,
    eventually: Eventually,
    sent: list[Sent],
) -> None:
    settings = reporting_settings
    client = await serve(create_app(settings, configure_logs=False))
    distinct = await publish_shuffled(publisher, settings, sent)

    async def all_counted() -> bool:
        return bool((await client.get("/v1/stats")).json()["total"] >= distinct)

    await eventually(all_counted, timeout=60)

    async def fairness(headers: dict[str, str], **params: Any) -> dict[str, Any]:
        response = await client.get("/v1/reports/fairness", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    last_week = iso_week(LAST_MONDAY)
    expected = recompute(sent, XZ, LAST_MONDAY)

    async def settled() -> dict[str, Any] | None:
        body = await fairness(XIANGZHOU, week=last_week)
        return body if body["total"] == expected else None

    try:
        report = await eventually(settled, timeout=15)
    except TimeoutError:  # show how they differ
        assert (await fairness(XIANGZHOU, week=last_week))["total"] == expected
        raise
    assert report["scope"]["kind"] == "district"
    assert report["scope"]["id"] == "xiangzhou"
    assert (report["week"], report["from"], report["to"]) == (
        last_week,
        LAST_MONDAY.isoformat(),
        (LAST_MONDAY + timedelta(days=6)).isoformat(),
    )
    by_market = {m["market_id"]: m for m in report["markets"]}
    assert sorted(by_market) == XZ
    for market_id in XZ:
        assert by_market[market_id]["figures"] == recompute(sent, [market_id], LAST_MONDAY)
    # the scene is rich enough to say something
    assert expected["draws"] >= 2
    assert 0 < expected["applicants_won"] < expected["applicants"]
    assert 0 < expected["vendors_served"] < expected["active_vendors"]
    assert 0 < expected["priority_stall_days"] < expected["stall_days"]
    assert expected["gini"] is not None
    assert 0 < expected["gini"] < 1

    # Stall-days are the standing bookings of the week's days.
    response = await client.get(
        "/v1/reports",
        params={
            "from": LAST_MONDAY.isoformat(),
            "to": (LAST_MONDAY + timedelta(days=6)).isoformat(),
        },
        headers=XIANGZHOU,
    )
    assert response.json()["total"]["standing_bookings"] == expected["stall_days"]

    # This week is the default, and a week of its own.
    this_week = await fairness(XIANGZHOU)
    assert this_week["week"] == iso_week(THIS_MONDAY)
    assert this_week["total"] == recompute(sent, XZ, THIS_MONDAY)
    assert this_week["total"] != expected

    # Doumen by hand. Stall-days per active vendor: a 3 (Wednesday, Thursday, the no-show on
    # Friday; not the suspended Saturday), b 1 (priority), c 0 (cancelled), d 0 (applied, lost):
    # [0, 0, 1, 3]. Mean 1; |x - y| over the 16 ordered pairs sums to 20 (0-1 four times, 0-3
    # four times, 1-3 twice: 4 + 12 + 4), mean absolute difference 1.25, Gini 1.25 / 2 = 0.625.
    # Draw: 3 applicants, 2 won (0.6667). Priority: 1 of 4 stall-days.
    doumen = await fairness(DOUMEN, week=last_week)
    hand = {
        "gini": 0.625,
        "stall_days": 4,
        "priority_stall_days": 1,
        "priority_stall_day_share": 0.25,
        "active_vendors": 4,
        "vendors_served": 2,
        "draws": 1,
        "applicants": 3,
        "applicants_won": 2,
        "applicant_win_share": 0.6667,
    }
    assert doumen["total"] == hand == recompute(sent, [DM_MARKET.id], LAST_MONDAY)
    # Nothing in Doumen this week: counts 0, every ratio null.
    quiet = (await fairness(DOUMEN, week=iso_week(THIS_MONDAY)))["total"]
    assert quiet["active_vendors"] == quiet["stall_days"] == quiet["draws"] == 0
    assert quiet["gini"] is quiet["priority_stall_day_share"] is quiet["applicant_win_share"]
    assert quiet["gini"] is None

    # The city: every district's vendors together (a booked in both districts).
    city = await fairness(ADMIN, week=last_week)
    assert city["scope"]["kind"] == "city"
    assert city["total"] == recompute(sent, ALL, LAST_MONDAY)
    assert city["total"]["active_vendors"] < (
        expected["active_vendors"] + hand["active_vendors"]
    )  # a once
    assert sorted(m["market_id"] for m in city["markets"]) == sorted(ALL)
    assert (await fairness(ADMIN, district="doumen", week=last_week))["total"] == hand

    # CSV: a BOM, bilingual headers, a row per market and the total, the same figures.
    response = await client.get(
        "/v1/reports/fairness",
        params={"week": last_week},
        headers={**XIANGZHOU, "Accept": "text/csv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, rows = table[0], table[1:]
    assert header[:3] == ["行 Row", "周 Week", "市场编号 Market"]
    named = {r[2]: dict(zip(header, r, strict=True)) for r in rows}
    assert sorted(named) == sorted([*XZ, "xiangzhou"])
    total = named["xiangzhou"]
    assert total["行 Row"] == "total"
    assert total["周 Week"] == last_week
    assert float(total["基尼系数(摊位日) Gini of stall-days"]) == expected["gini"]
    assert int(total["摊位日 Stall-days"]) == expected["stall_days"]
    assert int(total["活跃摊主 Active vendors"]) == expected["active_vendors"]
    share = float(total["申请人中签率 Applicant win share"])
    assert share == expected["applicant_win_share"]
    assert (
        int(named["XZ-81"]["抽签申请人 Applicants"]) == by_market["XZ-81"]["figures"]["applicants"]
    )

    # XLSX: reads back with openpyxl to the figures of the JSON report (nulls as empty cells).
    response = await client.get(
        "/v1/reports/fairness",
        params={"week": iso_week(THIS_MONDAY), "format": "xlsx", "district": "doumen"},
        headers=ADMIN,
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith(
        f'fairness-doumen-{iso_week(THIS_MONDAY)}.xlsx"'
    )
    response = await client.get(
        "/v1/reports/fairness",
        params={"week": last_week},
        headers={
            **DOUMEN,
            "Accept": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        },
    )
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    header_x = [str(v) for v in values[0]]
    total_row = dict(zip(header_x, values[[r[0] for r in values].index("total")], strict=True))
    assert total_row["基尼系数(摊位日) Gini of stall-days"] == 0.625
    assert total_row["优先群体摊位日占比 Priority stall-day share"] == 0.25
    assert total_row["获得摊位的摊主 Vendors served"] == 2
    assert total_row["中签申请人 Applicants won"] == 2
    assert total_row["申请人中签率 Applicant win share"] == 0.6667


async def test_fairness_is_read_by_its_district_and_administrators_only(
    reporting_settings: ReportingSettings, serve: Serve
) -> None:
    client = await serve(create_app(reporting_settings, configure_logs=False))
    path = "/v1/reports/fairness"
    params = {"district": "xiangzhou", "week": iso_week(LAST_MONDAY)}
    response = await client.get(path, params=params, headers=DOUMEN)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "other_district"
    response = await client.get(path, params=params, headers=bearer(Role.PATROL, "xiangzhou"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(path, params=params)).status_code == 401
    assert (await client.get(path, params=params, headers=ADMIN)).status_code == 200
    # District staff get their own district when they name none.
    own = await client.get(path, params={"week": params["week"]}, headers=DOUMEN)
    assert own.json()["scope"]["id"] == "doumen"
    for week in ["2026-49", "2026-W54", "2025-W53", "2026-W00", "this week", "2026-W49-1"]:
        response = await client.get(path, params={"week": week}, headers=ADMIN)
        assert response.status_code == 422, week
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "validation_failed"
