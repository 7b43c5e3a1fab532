"""Reports against a real broker and redis-server: the figures equal a recomputation from the raw
events, whatever the duplicates and the order they come in; CSV and XLSX say the same; a district
reads only its own; a second reporting service rebuilds the same figures from the topics."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from openpyxl import load_workbook

from contracts.catalogue import Category, District, Location, Market, MarketWindow, Stall
from contracts.envelope import Event
from contracts.events import (
    BookingCancelled,
    BookingCheckedIn,
    BookingCreated,
    BookingNoShow,
    BookingSuspendedByMarket,
    CaseClosed,
    CaseEvaluated,
    CaseHandled,
    CaseOpened,
    CaseSentBack,
    CaseState,
    MarketChanged,
    MarketSuspensionDeclared,
    ScanOutcome,
    ScanRecorded,
    StallChanged,
    WarningIssued,
    WindowCancelled,
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
YESTERDAY = TODAY - timedelta(days=1)
VIOLATIONS = ["litter", "out_of_line_box", "road_occupation"]


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


def earlier_on(day: date, rng: random.Random) -> datetime:
    """A random moment of ``day`` that has passed."""
    start = local(day, 0)
    end = min(start + timedelta(days=1), NOW - timedelta(seconds=1))
    return start + (end - start) * rng.random()


def market(market_id: str, district: District, name: str, windows: list[MarketWindow]) -> Market:
    """A market of the scene."""
    return Market(
        id=market_id,
        district=district,
        name_zh=name,
        name_en=f"{market_id} market",
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
MARKETS = [
    market("XZ-91", District.XIANGZHOU, "香洲测试夜市", [EVENING]),
    market("XZ-92", District.XIANGZHOU, "香洲测试早夜市", [MORNING, EVENING]),
    market("DM-91", District.DOUMEN, "斗门测试夜市", [EVENING]),
]


def scene(rng: random.Random) -> list[Sent]:
    """Catalogue, bookings, window changes and casework of two days in three markets."""
    sent: list[Sent] = []
    n = 0

    def send(event: Event, at: datetime) -> None:
        nonlocal n
        n += 1
        sent.append(Sent(event, at, f"evt-{n:05d}"))

    catalogue_at = local(YESTERDAY, 1)
    stalls: dict[str, list[str]] = {}
    for m in MARKETS:
        send(MarketChanged(market_id=m.id, market=m), catalogue_at)
        # An older version of the market, delivered later: it must not win.
        old = m.model_copy(update={"name_zh": "旧名称"})
        send(MarketChanged(market_id=m.id, market=old), catalogue_at - timedelta(hours=1))
        for s in range(1, 9):
            stall = Stall(
                id=f"{m.id}-A{s:03d}",
                market_id=m.id,
                category=Category.COOKED_FOOD,
                active=s != 8,
            )
            send(StallChanged(market_id=m.id, stall=stall), catalogue_at)
            if stall.active:
                stalls.setdefault(m.id, []).append(stall.id)
    send(
        MarketSuspensionDeclared(
            market_id="DM-91",
            suspension_id="sp_rep_1",
            first_date=YESTERDAY,
            last_date=YESTERDAY,
            reason="台风 Typhoon",
        ),
        catalogue_at,
    )
    send(
        WindowCancelled(
            market_id="XZ-92",
            date=YESTERDAY,
            window_id="morning",
            district=District.XIANGZHOU,
            cause="closed",
            reason="临时关闭 Closed",
        ),
        catalogue_at,
    )
    booking = scan = case = warning = 0
    for m in MARKETS:
        for day in (YESTERDAY, TODAY):
            for w in m.windows:
                starts = local(day, w.start.hour, w.start.minute)
                ends = local(day, w.end.hour, w.end.minute)
                for stall_id in stalls[m.id]:
                    if rng.random() > 0.75:
                        continue
                    booking += 1
                    common = {
                        "market_id": m.id,
                        "booking_id": f"bk_{booking:04d}",
                        "vendor_id": f"vd_{booking:04d}",
                        "stall_id": stall_id,
                        "date": day,
                        "window_id": w.id,
                    }
                    send(
                        BookingCreated(
                            **common,
                            category=Category.COOKED_FOOD,
                            starts_at=starts,
                            ends_at=ends,
                            priority=rng.random() < 0.3,
                        ),
                        starts - timedelta(days=2),
                    )
                    fate = rng.random()
                    if fate < 0.15:
                        send(BookingCancelled(**common, late=rng.random() < 0.5), starts)
                    elif fate < 0.7:
                        checked = starts + timedelta(minutes=rng.randrange(0, 150))
                        send(BookingCheckedIn(**common, checked_in_at=checked), checked)
                    elif fate < 0.85:
                        send(BookingNoShow(**common, no_shows_in_period=1), starts)
                    else:
                        send(BookingSuspendedByMarket(**common, reason="台风"), starts)
            for _ in range(12):
                scan += 1
                observed = earlier_on(day, rng)
                outcome = rng.choice(list(ScanOutcome))
                send(
                    ScanRecorded(
                        market_id=m.id,
                        district=m.district,
                        scan_id=f"sc_{scan:04d}",
                        stall_id=rng.choice(stalls[m.id]),
                        outcome=outcome,
                        violations=rng.sample(VIOLATIONS, rng.randrange(0, 2)),
                        patrol_id="patrol-1",
                        observed_at=observed,
                    ),
                    # recorded later (queued offline), perhaps the next day
                    observed + timedelta(hours=rng.choice([0, 0, 20])),
                )
            for _ in range(4):
                warning += 1
                send(
                    WarningIssued(
                        market_id=m.id,
                        district=m.district,
                        warning_id=f"wn_{warning:04d}",
                        subject_id=f"vd_w{warning}",
                        violation=rng.choice(VIOLATIONS),
                    ),
                    earlier_on(day, rng),
                )
            for _ in range(6):
                case += 1
                opened = earlier_on(day, rng)
                deadline = opened + timedelta(hours=rng.choice([1, 48]))
                if NOW <= deadline < NOW + timedelta(hours=1):
                    # the service judges "overdue" at its own now: keep deadlines clear of it
                    deadline = NOW + timedelta(hours=2)
                ids = {"market_id": m.id, "district": m.district, "case_id": f"cs_{case:04d}"}
                send(
                    CaseOpened(
                        **ids,
                        violation=rng.choice(VIOLATIONS),
                        deadline=deadline,
                        penalty_min_cny=50,
                        penalty_max_cny=200,
                    ),
                    opened,
                )
                step = {"actor_id": "district-1", "note": ""}
                at = opened
                if rng.random() < 0.3:
                    continue  # still open
                at = at + (NOW - at) * 0.3
                send(
                    CaseHandled(
                        **ids, **step, from_state=CaseState.DISPATCHED,
                        to_state=CaseState.HANDLED, on_time=at <= deadline,
                    ),
                    at,
                )  # fmt: skip
                if rng.random() < 0.3:  # sent back; perhaps handled again
                    at = at + (NOW - at) * 0.3
                    send(
                        CaseSentBack(
                            **ids, **step, from_state=CaseState.HANDLED,
                            to_state=CaseState.DISPATCHED, on_time=at <= deadline,
                        ),
                        at,
                    )  # fmt: skip
                    if rng.random() < 0.5:
                        continue
                    at = at + (NOW - at) * 0.3
                    send(
                        CaseHandled(
                            **ids, **step, from_state=CaseState.DISPATCHED,
                            to_state=CaseState.HANDLED, on_time=at <= deadline,
                        ),
                        at,
                    )  # fmt: skip
                if rng.random() < 0.6:
                    at = at + (NOW - at) * 0.3
                    send(
                        CaseClosed(
                            **ids, **step, from_state=CaseState.VERIFIED,
                            to_state=CaseState.CLOSED, on_time=True,
                        ),
                        at,
                    )  # fmt: skip
                    if rng.random() < 0.7:
                        send(
                            CaseEvaluated(**ids, score=rng.randint(1, 5), by_role="vendor"),
                            at + (NOW - at) * 0.5,
                        )
    return sent


# -- the recomputation: straight from the events, sharing no code with the service ------------


def day_of(at: datetime) -> date:
    """The local date of ``at``."""
    return at.astimezone(MARKET_TZ).date()


def recompute(sent: list[Sent], market_ids: list[str], day: date) -> dict[str, Any]:
    """The figures of ``market_ids`` on ``day``, as defined in the README."""
    events = {s.event_id: s for s in sent}.values()  # duplicates are one event

    def of(kind: type[Any]) -> list[Sent]:
        return [s for s in events if isinstance(s.event, kind) and s.event.market_id in market_ids]

    latest_stall: dict[str, tuple[datetime, bool]] = {}
    for s in of(StallChanged):
        e = s.event
        assert isinstance(e, StallChanged)
        if e.stall.id not in latest_stall or latest_stall[e.stall.id][0] <= s.at:
            latest_stall[e.stall.id] = (s.at, e.stall.active)
    bookable = 0
    for m in MARKETS:
        if m.id not in market_ids:
            continue
        suspended = any(
            isinstance(s.event, MarketSuspensionDeclared)
            and s.event.market_id == m.id
            and s.event.first_date <= day <= s.event.last_date
            for s in events
        )
        if suspended:
            continue
        withdrawn = {
            s.event.window_id
            for s in events
            if isinstance(s.event, WindowCancelled)
            and s.event.market_id == m.id
            and s.event.date == day
        }
        windows = [w for w in m.windows if day.isoweekday() in w.days and w.id not in withdrawn]
        active = sum(1 for sid, (_, a) in latest_stall.items() if sid.startswith(m.id) and a)
        bookable += active * len(windows)

    created = {s.event.booking_id: s.event for s in of(BookingCreated) if s.event.date == day}  # type: ignore[attr-defined]

    def ids(kind: type[Any]) -> dict[str, Any]:
        return {s.event.booking_id: s.event for s in of(kind) if s.event.booking_id in created}

    cancelled, checked, no_show, ended = (
        ids(BookingCancelled), ids(BookingCheckedIn), ids(BookingNoShow),
        ids(BookingSuspendedByMarket),
    )  # fmt: skip
    hours = [0] * 24
    midnight = local(day, 0)
    for booking_id, c in checked.items():
        b = created[booking_id]
        since = max(b.starts_at, c.checked_in_at)
        for h in range(24):
            begins = midnight + timedelta(hours=h)
            if since < begins + timedelta(hours=1) and b.ends_at > begins:
                hours[h] += 1
    scans = [s.event for s in of(ScanRecorded) if day_of(s.event.observed_at) == day]  # type: ignore[attr-defined]
    warnings = [s.event for s in of(WarningIssued) if day_of(s.at) == day]
    opened = {s.event.case_id: s for s in of(CaseOpened) if day_of(s.at) == day}  # type: ignore[attr-defined]
    closed_today = [s for s in of(CaseClosed) if day_of(s.at) == day]
    due = on_time = handled_n = closed_n = evaluated = satisfied = 0
    hours_total = 0.0
    for case_id, o in opened.items():
        steps = sorted(
            (s.at, type(s.event).__name__, s.event)
            for s in events
            if getattr(s.event, "case_id", None) == case_id and s is not o
        )
        handling = None
        for at, name, event in steps:
            if name == "CaseHandled":
                handling = (at, event.on_time)
            elif name == "CaseSentBack":
                handling = None
        deadline = o.event.deadline  # type: ignore[attr-defined]
        if handling is not None:
            due += 1
            handled_n += 1
            on_time += handling[1]
            hours_total += (handling[0] - o.at).total_seconds() / 3600
        elif deadline < NOW:
            due += 1
        closed_n += any(name == "CaseClosed" for _, name, _ in steps)
        scores = [e.score for _, name, e in steps if name == "CaseEvaluated"]
        if scores:
            evaluated += 1
            satisfied += scores[-1] >= 4

    def rate(a: float, b: float) -> float | None:
        return None if b == 0 else round(a / b, 4)

    violations = Counter(w.violation for w in warnings)  # type: ignore[attr-defined]
    violations.update(o.event.violation for o in opened.values())  # type: ignore[attr-defined]
    standing = sum(1 for b in created if b not in cancelled and b not in ended)
    compliant = sum(1 for s in scans if s.outcome is ScanOutcome.COMPLIANT)  # type: ignore[attr-defined]
    return {
        "bookable_stall_windows": bookable,
        "bookings": len(created),
        "priority_bookings": sum(1 for b in created.values() if b.priority),
        "priority_share": rate(sum(1 for b in created.values() if b.priority), len(created)),
        "check_ins": len(checked),
        "no_shows": len(no_show),
        "cancellations": len(cancelled),
        "late_cancellations": sum(1 for c in cancelled.values() if c.late),
        "standing_bookings": standing,
        "booked_rate": rate(standing, bookable),
        "occupancy_rate": rate(len(checked), bookable),
        "scans": len(scans),
        "scans_by_outcome": dict(sorted(Counter(s.outcome.value for s in scans).items())),  # type: ignore[attr-defined]
        "compliant_share": rate(compliant, len(scans)),
        "warnings": len(warnings),
        "violations_by_type": dict(sorted(violations.items())),
        "cases_opened": len(opened),
        "cases_closed": len(closed_today),
        "disposals_due": due,
        "disposed_on_time": on_time,
        "on_time_disposal_rate": rate(on_time, due),
        "mean_disposal_hours": None if not handled_n else round(hours_total / handled_n, 2),
        "cohort_closed": closed_n,
        "closure_rate": rate(closed_n, len(opened)),
        "evaluations": evaluated,
        "satisfied": satisfied,
        "satisfaction": rate(satisfied, evaluated),
        "occupancy_by_hour": hours,
    }


def approx(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures with the mean disposal time rounded off (float sums in another order)."""
    out = dict(figures)
    if out["mean_disposal_hours"] is not None:
        out["mean_disposal_hours"] = round(out["mean_disposal_hours"], 1)
    return out


# -- the test -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sent() -> list[Sent]:
    """The scene of this module."""
    return scene(random.Random(20261122))


async def publish_shuffled(
    publisher: KafkaBroker, settings: ReportingSettings, sent: list[Sent]
) -> int:
    """Every event in a random order, a third of them twice; how many distinct events."""
    rng = random.Random(7)
    deliveries = list(sent) + [s for s in sent if rng.random() < 0.33]
    rng.shuffle(deliveries)
    for s in deliveries:
        await publish_event(publisher, settings, s.event, time=s.at, event_id=s.event_id)
    return len(sent)


async def test_figures_equal_a_recomputation_from_the_events_in_every_format(
    reporting_settings: ReportingSettings,
    service_settings: Any,
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
    xz = ["XZ-91", "XZ-92"]

    async def daily(headers: dict[str, str], **params: Any) -> dict[str, Any]:
        response = await client.get("/v1/reports/daily", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    expected = recompute(sent, xz, YESTERDAY)

    async def settled() -> dict[str, Any] | None:
        body = await daily(XIANGZHOU, date=YESTERDAY.isoformat())
        return body if approx(body["total"]) == approx(expected) else None

    try:
        report = await eventually(settled, timeout=15)
    except TimeoutError:  # show how they differ
        body = await daily(XIANGZHOU, date=YESTERDAY.isoformat())
        assert approx(body["total"]) == approx(expected)
        raise
    assert report["scope"] == {
        "kind": "district", "id": "xiangzhou", "name_zh": "香洲区", "name_en": "Xiangzhou District"
    }  # fmt: skip
    by_market = {m["market_id"]: m for m in report["markets"]}
    assert sorted(by_market) == xz
    assert by_market["XZ-91"]["name_zh"] == "香洲测试夜市"  # the older version did not win
    for market_id in xz:
        assert approx(by_market[market_id]["figures"]) == approx(
            recompute(sent, [market_id], YESTERDAY)
        )
    assert report["total"]["bookings"] > 10
    assert report["total"]["cases_opened"] > 5

    # The suspended market has nothing bookable that day; the city adds every district up.
    doumen = await daily(DOUMEN, date=YESTERDAY.isoformat())
    assert doumen["total"]["bookable_stall_windows"] == 0
    city = await daily(ADMIN, date=YESTERDAY.isoformat())
    assert city["scope"]["kind"] == "city"
    assert approx(city["total"]) == approx(recompute(sent, [*xz, "DM-91"], YESTERDAY))

    # A range: per day, and in all.
    response = await client.get(
        "/v1/reports",
        params={"district": "xiangzhou", "from": YESTERDAY.isoformat(), "to": TODAY.isoformat()},
        headers=ADMIN,
    )
    ranged = response.json()
    assert [d["date"] for d in ranged["days"]] == [YESTERDAY.isoformat(), TODAY.isoformat()]
    assert approx(ranged["days"][1]["figures"]) == approx(recompute(sent, xz, TODAY))
    both = [recompute(sent, xz, d) for d in (YESTERDAY, TODAY)]
    assert ranged["total"]["bookings"] == both[0]["bookings"] + both[1]["bookings"]
    assert ranged["total"]["scans"] == both[0]["scans"] + both[1]["scans"]

    # CSV: a BOM, bilingual headers, Chinese names, the same figures.
    response = await client.get(
        "/v1/reports/daily",
        params={"date": YESTERDAY.isoformat()},
        headers={**XIANGZHOU, "Accept": "text/csv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, rows = table[0], table[1:]
    assert header[:4] == ["行 Row", "日期 Date", "市场编号 Market", "名称 Name"]
    assert "按时处置率 On-time disposal rate" in header
    named = {r[2]: dict(zip(header, r, strict=True)) for r in rows}
    assert named["XZ-91"]["名称 Name"] == "香洲测试夜市"
    assert named["xiangzhou"]["名称 Name"] == "香洲区"
    assert int(named["xiangzhou"]["预约 Bookings"]) == expected["bookings"]
    assert int(named["xiangzhou"]["巡查扫码 Scans"]) == expected["scans"]
    on_time = named["xiangzhou"]["按时处置率 On-time disposal rate"]
    assert (float(on_time) if on_time else None) == expected["on_time_disposal_rate"]

    # XLSX: reads back with openpyxl to the figures of the JSON report.
    response = await client.get(
        "/v1/reports/daily",
        params={"date": YESTERDAY.isoformat(), "format": "xlsx"},
        headers=XIANGZHOU,
    )
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    header_x = [str(v) for v in values[0]]
    total_row = dict(zip(header_x, values[[r[0] for r in values].index("total")], strict=True))
    for column, key in [
        ("可预约摊位时段 Bookable stall-windows", "bookable_stall_windows"),
        ("签到 Check-ins", "check_ins"),
        ("使用率 Occupancy rate", "occupancy_rate"),
        ("结案率 Closure rate", "closure_rate"),
        ("满意率 Satisfaction", "satisfaction"),
        ("警告 Warnings", "warnings"),
    ]:
        assert total_row[column] == report["total"][key], column

    # A second reporting service, on its own Redis keys, rebuilds the same figures from the topics.
    rebuilt_settings = settings.model_copy(
        update={"redis_prefix": settings.redis_prefix + "re:", "consumer_group": "rebuild"}
    )
    rebuilt = await serve(create_app(rebuilt_settings, configure_logs=False))

    async def rebuilt_report() -> dict[str, Any] | None:
        response = await rebuilt.get(
            "/v1/reports/daily", params={"date": YESTERDAY.isoformat()}, headers=XIANGZHOU
        )
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["total"] == report["total"] else None

    again = await eventually(rebuilt_report, timeout=60)
    assert again["markets"] == report["markets"]


async def test_reports_are_read_by_their_district_and_administrators_only(
    reporting_settings: ReportingSettings, serve: Serve
) -> None:
    client = await serve(create_app(reporting_settings, configure_logs=False))
    day = {"date": YESTERDAY.isoformat()}
    for path, params in [
        ("/v1/reports/daily", {"district": "xiangzhou", **day}),
        ("/v1/reports", {"district": "xiangzhou", "from": day["date"], "to": day["date"]}),
        ("/v1/reports/live", {"district": "xiangzhou"}),
    ]:
        response = await client.get(path, params=params, headers=DOUMEN)
        assert response.status_code == 403, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "other_district"
        patrol = bearer(Role.PATROL, "xiangzhou")
        assert (await client.get(path, params=params, headers=patrol)).status_code == 403
        assert (await client.get(path, params=params)).status_code == 401
        assert (await client.get(path, params=params, headers=ADMIN)).status_code == 200
    too_long = {"from": "2025-01-01", "to": "2026-06-01"}
    response = await client.get("/v1/reports", params=too_long, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["code"] == "date_range_too_long"
    backwards = {"from": day["date"], "to": (YESTERDAY - timedelta(days=1)).isoformat()}
    response = await client.get("/v1/reports", params=backwards, headers=ADMIN)
    assert response.json()["code"] == "invalid_date_range"
