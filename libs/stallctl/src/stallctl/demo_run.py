"""``stallctl demo``: start the embedded system on a sped-up clock, play a simulated day through
the public APIs (:mod:`stallctl.demo_driver`), print reporting's figures beside the driver's own
tally, and leave the system running with the dashboard populated (unless told to exit)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

from contracts.catalogue import Catalogue
from contracts.seed import load_catalogue
from stallctl import procs
from stallctl.demo import (
    DEFAULT_SPEED,
    DEFAULT_VENDORS,
    DayPlan,
    demo_violations,
    make_vendors,
    next_saturday,
    plan_day,
    select_markets,
)
from stallctl.demo_draws import AFTER_THE_DRAW, DrawPlayer, PlannedDraw, draw_lines, plan_draws
from stallctl.demo_driver import Console, Driver, Signer, Urls
from stallctl.demo_feeds import Offices, feed_summary
from stallctl.demo_report import (
    DistrictReport,
    agreement,
    differences,
    district_label,
    format_report,
    group_shares,
    spread,
)
from stallctl.errors import StartupError
from stallctl.ports import SERVICES, Ports
from stallctl.runtime import STOP_SIGNALS, EmbeddedSystem
from stallctl.tokens import StaffSettings
from stallkit.auth import Role
from stallkit.clock import MARKET_TZ, Clock
from stallkit.keys import Issuer, SigningKey, canonical_seed

#: How long (real seconds) to wait for reporting to have seen everything the driver did.
CONVERGE_SECONDS = 90.0


@dataclass
class DemoOptions:
    """What ``stallctl demo`` was asked for."""

    day: date | None = None
    speed: float = DEFAULT_SPEED
    vendors: int = DEFAULT_VENDORS
    markets: list[str] = field(default_factory=list)
    seed: int = 1
    data_dir: Path | None = None
    ports: Ports = field(default_factory=Ports)
    exit: bool = False
    webhook: str | None = None
    summary: Path | None = None
    ready_timeout: float = 90.0
    concurrency: int = 24
    #: Processes of each service; the driver's calls go to each in turn.
    replicas: int = 1


def parse_day(text: str | None) -> date | None:
    """``--date``: a YYYY-MM-DD date, or None (the coming Saturday); ValueError otherwise."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None


def demo_ports(base: int | None, **given: int | None) -> Ports:
    """Six consecutive ports from ``base``, or free ones; any given port replaces its own."""
    if base:
        return Ports.from_base(base).with_overrides(**given)
    taken = {port for port in given.values() if port}
    free: list[int] = []
    while len(free) < 6:
        port = procs.free_port()
        if port not in free and port not in taken:
            free.append(port)
    return Ports(*free).with_overrides(**given)


class _Stop(BaseException):
    """Raised by the signal handler so that everything unwinds as on Ctrl-C."""


def _vendor_key(environ: Mapping[str, str]) -> SigningKey:
    from allocation.config import DEV_VENDOR_TOKEN_SEED_B64

    seed = environ.get("ALLOCATION_TOKEN_SIGNING_KEY") or DEV_VENDOR_TOKEN_SEED_B64
    return SigningKey.from_seed(
        Issuer.ALLOCATION, canonical_seed(seed, "ALLOCATION_TOKEN_SIGNING_KEY")
    )


def _write_inputs(catalogue: Catalogue, data_dir: Path, reduced: bool) -> tuple[Path | None, Path]:
    """The reduced seed catalogue (if any) and the demo's violation catalogue, in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    seed_file = None
    if reduced:
        seed_file = data_dir / "demo-catalogue.json"
        seed_file.write_text(catalogue.model_dump_json(indent=1), encoding="utf-8")
    packaged = resources.files("inspection").joinpath("catalogue/violations.json")
    violations = demo_violations(json.loads(packaged.read_text("utf-8")))
    violations_file = data_dir / "demo-violations.json"
    violations_file.write_text(json.dumps(violations, ensure_ascii=False, indent=1), "utf-8")
    return seed_file, violations_file


def run_demo(
    options: DemoOptions,
    *,
    environ: Mapping[str, str] | None = None,
    console: Console | None = None,
) -> int:
    """Run the demo; the exit code (0: the day ran and reporting agrees with the tally)."""
    environ = dict(os.environ if environ is None else environ)
    console = console or Console()
    if environ.get("STALL_MODE") == "prod":
        console.say("✗ the demo runs in development mode only (its clock is sped up)")
        return 2
    try:
        catalogue = select_markets(load_catalogue(), options.markets)
    except ValueError as exc:
        console.say(f"✗ {exc}")
        return 2
    day = options.day or next_saturday(datetime.now(MARKET_TZ).date())
    rng = random.Random(options.seed)
    vendors = make_vendors(catalogue, options.vendors, day, rng)
    try:
        plan = plan_day(catalogue, day, vendors, rng, speed=options.speed)
    except ValueError as exc:
        console.say(f"✗ {exc}")
        return 2
    draws = plan_draws(
        catalogue, day, vendors, rng, apply_from=plan.starts_at + timedelta(minutes=30)
    )
    if draws:  # the day goes on until the draws have run and been checked
        plan.ends_at = max(plan.ends_at, draws[0].draw_at + AFTER_THE_DRAW)
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="stallctl-demo-"))
    seed_file, violations_file = _write_inputs(catalogue, data_dir, bool(options.markets))
    anchor = time.time()
    offset = plan.starts_at.timestamp() - anchor
    clock = Clock(offset_seconds=offset, speed=options.speed, anchor=anchor)
    environ.update(
        {
            "STALL_CLOCK_SPEED": repr(options.speed),
            "STALL_CLOCK_ANCHOR": repr(anchor),
            "STALL_CLOCK_OFFSET_SECONDS": repr(offset),
            "INSPECTION_VIOLATIONS_FILE": str(violations_file),
            "STALL_LOG_LEVEL": environ.get("STALL_LOG_LEVEL", "WARNING"),
        }
    )
    system = EmbeddedSystem(
        data_dir=data_dir,
        ports=options.ports,
        environ=environ,
        seed_file=seed_file,
        ready_timeout=options.ready_timeout,
        echo=console.say,
        replicas=options.replicas,
    )
    staff = StaffSettings.from_environ(environ)
    signer = Signer(staff.signing_key(), _vendor_key(environ), clock)
    urls = Urls(
        allocation=system.url("allocation"),
        windows=system.url("windows"),
        inspection=system.url("inspection"),
        reporting=system.url("reporting"),
        replicas={s: system.urls(s) for s in SERVICES} if options.replicas > 1 else {},
    )
    _intro(console, plan, draws, options, catalogue, system)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    keep = True  # a temporary data folder is removed once the day agreed with the report
    try:
        system.start()
        console.say(
            f"系统已就绪 / system ready in {system.ready_seconds or 0:.1f}s; the clock reads "
            f"{clock.local_now():%Y-%m-%d %H:%M} and runs {options.speed:g}× real time"
        )
        driver = Driver(
            urls, clock, plan, signer, console,
            redis_url=system.redis_url, redis_prefix=environ.get("STALL_REDIS_PREFIX", ""),
            seed=options.seed, concurrency=options.concurrency,
        )  # fmt: skip
        agreed = asyncio.run(_day(driver, options, draws))
        code = 0 if agreed and not driver.breaches else 1
        keep = code != 0
        if options.exit:
            return code
        _hold(console, system, signer, plan)
        return code
    except (KeyboardInterrupt, _Stop):
        console.say("\n正在停止 / stopping…")
        return 0
    except StartupError as exc:
        console.say(f"✗ 启动失败 / could not start: {exc}")
        return 1
    finally:
        system.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if options.data_dir is None:  # a temporary folder of ours: kept only to look into
            if keep:
                console.say(f"the data folder (logs) is kept: {data_dir}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)


def _intro(
    console: Console,
    plan: DayPlan,
    draws: list[PlannedDraw],
    options: DemoOptions,
    catalogue: Catalogue,
    system: Any,
) -> None:
    stalls = len(catalogue.stalls)
    lottery = ""
    if draws:
        applicants = sum(len(d.applications) for d in draws)
        lottery = (
            f"\n  lottery: {applicants} vendors apply for {len(draws)} windows of "
            f"{draws[0].day:%A %m-%d} ({sum(d.stalls for d in draws)} stalls), drawn at "
            f"{draws[0].draw_at.astimezone(MARKET_TZ):%H:%M}"
        )
    console.say(
        f"演示 / demo: {plan.day:%Y-%m-%d (%A)}, {len(catalogue.markets)} markets, {stalls:,} "
        f"stalls, {len(plan.slots)} market windows, {len(plan.vendors):,} vendors "
        f"(seed {options.seed})\n"
        f"  simulated {plan.starts_at.astimezone(MARKET_TZ):%H:%M}–"
        f"{plan.ends_at.astimezone(MARKET_TZ):%H:%M} at {options.speed:g}× ≈ "
        f"{(plan.ends_at - plan.starts_at).total_seconds() / options.speed / 60:.1f} min; "
        f"plan: {len(plan.intents):,} bookings, {len(plan.scans):,} patrol scans, "
        f"{len(plan.probes)} bookings the rules must refuse{lottery}\n"
        f"  case disposal deadlines are shortened for the demo (24 h → 2 h, 48 h → 4 h, "
        f"72 h → 6 h) so that one day shows late handling\n"
        f"  data: {system.data_dir}"
    )


async def _day(driver: Driver, options: DemoOptions, draws: list[PlannedDraw]) -> bool:
    """Play the day (the draws' applications and checks beside it), then read reporting's
    figures until they agree with the tally."""
    console, plan = driver.console, driver.plan
    featured = plan.featured
    if featured is not None:
        console.say(
            f"跟踪一位摊贩 / following one vendor: {featured.vendor.name} ({featured.vendor.id}) "
            f"at {featured.stall_id}, {district_label(featured.slot.district)}"
        )
    webhook: dict[str, Any] | None = None
    await driver.create_vendors()
    await driver.open()
    try:
        if options.webhook and featured is not None:
            webhook = await _register_webhook(
                driver, options.webhook, featured.slot.district, featured.slot.market_id
            )
        if not await driver.catalogue_known():
            console.say("⚠ the services have not all read the catalogue yet; playing on")
        offices = Offices(driver)
        offices.start()
        players = [DrawPlayer(driver, d) for d in draws]
        for player in players:
            for application in player.draw.applications:
                driver.spawn(player.apply(application))
            driver.spawn(player.follow())
        await driver.run_day()
        console.say("一天结束，等待报表汇总 / the day is over; waiting for reporting to catch up…")
        rows = await _reports(driver)
        await offices.finish()
    finally:
        await driver.close()
    agreed, verdict = agreement(rows)
    console.say("")
    console.say(
        format_report(
            plan.day.isoformat(), rows, _extras(driver) + draw_lines(players) + offices.lines()
        )
    )
    console.say(verdict)
    for breach in driver.breaches:
        console.say(f"✗ 规则未能阻止 a rule did not hold: {breach}")
    problems = [f for f in driver.failed if "(retrying)" not in f]
    if problems:
        console.say(f"⚠ {len(problems)} calls did not go as planned, e.g.:")
        for line in problems[:8]:
            console.say(f"    {line}")
    if options.summary is not None:
        _write_summary(options.summary, driver, rows, webhook, players, offices)
    return agreed


async def _register_webhook(
    driver: Driver, url: str, district: str, market_id: str
) -> dict[str, Any]:
    response = await driver.request(
        "POST",
        f"{driver.at('reporting')}/v1/feeds/{district}/webhooks",
        headers=driver.signer.staff(Role.DISTRICT, f"{district}-office-1", district),
        json={"url": url, "markets": [market_id], "description": "stallctl demo"},
    )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    driver.console.say(
        f"Webhook {answer['id']} → {url} ({district}, {market_id}); secret {answer['secret']}"
    )
    return answer


async def _reports(driver: Driver) -> list[DistrictReport]:
    """Each district's (and the city's) daily figures and fairness, compared with the tally."""
    day = driver.plan.day.isoformat()
    week = f"{driver.plan.day.isocalendar().year}-W{driver.plan.day.isocalendar().week:02d}"
    admin = driver.signer.admin()

    def reporting() -> str:  # each call to the next replica
        return driver.at("reporting")

    figures: dict[str, dict[str, Any]] = {}
    markets = {
        d: len({s.market_id for s in driver.plan.slots if s.district == d})
        for d in driver.plan.districts()
    }

    async def read() -> bool:
        for district in driver.plan.districts():
            response = await driver.request(
                "GET", f"{reporting()}/v1/reports/daily?district={district}&date={day}",
                headers=admin,
            )  # fmt: skip
            response.raise_for_status()
            answer = response.json()
            figures[district] = answer["total"] | {"_at": answer["generated_at"]}
        return all(not _mismatches(driver, d, figures[d]) for d in figures)

    await driver.wait_for(read, CONVERGE_SECONDS)
    rows = []
    for district in driver.plan.districts():
        fair = await _get(
            driver, f"{reporting()}/v1/reports/fairness?district={district}&week={week}"
        )
        rows.append(
            DistrictReport(
                district, markets[district], figures[district], fair["total"],
                _mismatches(driver, district, figures[district]),
            )
        )  # fmt: skip
    city = await _get(driver, f"{reporting()}/v1/reports/daily?date={day}")
    fair = await _get(driver, f"{reporting()}/v1/reports/fairness?week={week}")
    rows.append(DistrictReport("city", sum(markets.values()), city["total"], fair["total"]))
    return rows


async def _get(driver: Driver, url: str) -> dict[str, Any]:
    response = await driver.request("GET", url, headers=driver.signer.admin())
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def _mismatches(driver: Driver, district: str, reported: Mapping[str, Any]) -> list[str]:
    at = datetime.fromisoformat(str(reported["_at"]))
    return differences(driver.tally[district].figures(at), reported)


def _extras(driver: Driver) -> list[str]:
    """The lines under the tables: fairness of the vendors, scans, rules, the followed vendor."""
    plan = driver.plan
    per_vendor = {v: len(ids) for v, ids in driver.vendor_bookings.items()}
    standing = {
        v: sum(1 for b in ids if not any(b in t.cancelled for t in driver.tally.values()))
        for v, ids in driver.vendor_bookings.items()
    }
    group_of = {v.id: v.priority_group.value for v in plan.vendors}
    by_group: Counter[str] = Counter()
    for vendor_id, count in per_vendor.items():
        by_group[group_of[vendor_id]] += count
    outcomes: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for tally in driver.tally.values():
        outcomes.update(tally.scans.values())
        refused.update({k: v for k, v in tally.refused.items() if v > 0})
    lines = [
        spread(standing, len(plan.vendors)) + f" (of {len(plan.vendors):,} vendors)",
        group_shares(by_group, Counter(group_of.values())),
        "巡查结果 scans by outcome: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])),
        "规则拒绝的预约 bookings the rules refused: "
        + (", ".join(f"{k} {v}" for k, v in sorted(refused.items())) or "none"),
    ]
    if driver.latencies:
        ordered = sorted(driver.latencies)
        lines.append(
            f"接口调用 API calls: {len(ordered):,}, median {ordered[len(ordered) // 2] * 1000:.0f} "
            f"ms, 95th percentile {ordered[int(len(ordered) * 0.95)] * 1000:.0f} ms"
        )
    featured = driver.featured
    if featured.booking_id:
        lines.append(
            f"跟踪摊贩 followed vendor {featured.name} ({featured.vendor_id}): booking "
            f"{featured.booking_id}, warnings {', '.join(featured.warnings) or '—'}, "
            f"cases {', '.join(featured.cases) or '—'}"
        )
    return lines


def _write_summary(
    path: Path,
    driver: Driver,
    rows: list[DistrictReport],
    webhook: dict[str, Any] | None,
    players: list[DrawPlayer],
    offices: Offices,
) -> None:
    """What the demo did and what reporting said, as JSON (for tests and scripts)."""
    plan = driver.plan
    districts = {}
    for row in rows:
        if row.district == "city":
            continue
        tally = driver.tally[row.district]
        at = datetime.fromisoformat(str(row.figures["_at"]))
        districts[row.district] = {
            "tally": tally.figures(at),
            "report": {k: v for k, v in row.figures.items() if not k.startswith("_")},
            "fairness": row.fairness,
            "mismatches": list(row.mismatches),
            "cases": {cid: c.steps for cid, c in tally.cases.items()},
            "refused": dict(tally.refused),
        }
    clock = driver.clock
    summary = {
        "date": plan.day.isoformat(),
        "clock": {"anchor": clock.anchor, "offset": clock.offset_seconds, "speed": clock.speed},
        "urls": asdict(driver.urls),
        "starts_at": plan.starts_at.isoformat(),
        "ends_at": plan.ends_at.isoformat(),
        "markets": sorted({s.market_id for s in plan.slots}),
        "districts": districts,
        "vendors": [v.id for v in plan.vendors],
        "bookings": driver.vendor_bookings,
        "featured": asdict(driver.featured),
        "webhook": webhook,
        "failed": driver.failed,
        "breaches": driver.breaches,
        "feeds": feed_summary(offices),
        "draws": [
            {
                "district": p.draw.district,
                "market_id": p.draw.market_id,
                "date": p.draw.day.isoformat(),
                "window_id": p.draw.window_id,
                "stalls": p.draw.stalls,
                "planned": len(p.draw.applications),
                "priority_planned": sum(a.priority for a in p.draw.applications),
                **p.outcome.as_dict(),
            }
            for p in players
        ],
    }
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")


def _hold(console: Console, system: EmbeddedSystem, signer: Signer, plan: DayPlan) -> None:
    """Keep the system running until Ctrl-C, saying how to look at what the day left."""
    district = plan.featured.slot.district if plan.featured else plan.districts()[0]
    office = signer.staff(Role.DISTRICT, f"{district}-office-1", district)["Authorization"]
    admin = signer.admin()["Authorization"]
    console.say(
        "\n".join(
            [
                "",
                f"仪表盘 dashboard: {system.url('reporting')}/  (pick the date {plan.day})",
                "  sign in with a token minted on the demo's clock (`stallctl token` mints on "
                "real time, which the demo's services take for expired):",
                f"  {district} office: {office.removeprefix('Bearer ')}",
                f"  admin: {admin.removeprefix('Bearer ')}",
                f"  API docs: {system.url('allocation')}/docs · {system.url('inspection')}/docs "
                f"· {system.url('reporting')}/docs",
                "  系统继续运行（时钟仍在加速）；按 Ctrl-C 停止 / the system keeps running (its "
                "clock still sped up); press Ctrl-C to stop",
            ]
        )
    )
    while True:
        system.check_children()
        time.sleep(0.5)
