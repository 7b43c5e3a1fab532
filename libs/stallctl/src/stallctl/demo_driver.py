"""``stallctl demo``: plays a :class:`~stallctl.demo.DayPlan` through the services' public HTTP
APIs on their sped-up clock, keeping its own tally of what the services accepted.

Vendors are created straight in allocation's Redis with verified eligibility (as the booking
benchmark does: registration through the API is rate-limited per client address and needs the
texted code); everything else goes through HTTP: bookings, cancellations, check-ins with the
stall's code (read from allocation's admin endpoint), patrol scans, the district offices' case
steps and evaluations, and, at the end, reporting's figures.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import random
import secrets
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import httpx
from redis.asyncio.cluster import RedisCluster

from allocation.adapters.keys import Keys
from allocation.adapters.vendor_store import VendorStore
from allocation.domain.model import Vendor
from stallctl.demo import (
    HANDLER,
    VERIFIER,
    DayPlan,
    DemoVendor,
    Intent,
    PlannedScan,
    Probe,
    Step,
    case_steps,
    evaluation_score,
)
from stallctl.demo_report import CaseTally, DistrictTally, clip, progress_line
from stallctl.ports import SERVICES
from stallctl.tokens import staff_token
from stallkit.auth import Role, mint_token
from stallkit.clock import MARKET_TZ, Clock
from stallkit.keys import SigningKey
from stallkit.redis_client import redis_client

#: Tokens the demo mints live this long in service time (the clock runs fast).
TOKEN_TTL_SECONDS = 400 * 86400
#: A walk-in tries again this often (service time) while the no-show's release is on its way.
WALK_IN_RETRY = timedelta(minutes=4)
STEP_ACTORS = {
    Step.FILE: HANDLER,
    Step.DISPATCH: HANDLER,
    Step.HANDLE: HANDLER,
    Step.SEND_BACK: VERIFIER,
    Step.VERIFY: VERIFIER,
    Step.CLOSE: VERIFIER,
}
STEP_NOTES = {
    Step.FILE: "立案 filed",
    Step.DISPATCH: "派遣至辖区执法中队 dispatched to the district squad",
    Step.HANDLE: "已现场处置，摊贩已整改 handled on site, the vendor complied",
    Step.SEND_BACK: "核查未通过，退回重办 verification failed: sent back",
    Step.VERIFY: "复核属实 verified",
    Step.CLOSE: "结案 closed",
}


@dataclass(frozen=True)
class Urls:
    """Base URLs of the four services (their first replicas), and of every replica."""

    allocation: str
    windows: str
    inspection: str
    reporting: str
    #: Every replica's base URL by service (``stallctl demo --replicas N``); none: one each.
    replicas: dict[str, list[str]] = field(default_factory=dict)

    def all(self, service: str) -> list[str]:
        """The base URLs of every replica of ``service``, the first replica's first."""
        return list(self.replicas.get(service) or [getattr(self, service)])


@dataclass
class Signer:
    """Mints the tokens the demo's people use: vendors' (allocation's key) and staff's."""

    staff_key: SigningKey
    vendor_key: SigningKey
    clock: Clock
    _cache: dict[tuple[str, str, str | None], dict[str, str]] = field(default_factory=dict)

    def staff(self, role: Role, sub: str, district: str | None = None) -> dict[str, str]:
        """Authorization header of a staff member."""
        key = (role.value, sub, district)
        if key not in self._cache:
            token = staff_token(
                self.staff_key, role=role, sub=sub, now=self.clock.now(),
                ttl_seconds=TOKEN_TTL_SECONDS, district=district,
            )  # fmt: skip
            self._cache[key] = {"Authorization": f"Bearer {token}"}
        return self._cache[key]

    def vendor(self, vendor_id: str) -> dict[str, str]:
        """Authorization header of a vendor, as allocation's login would issue it."""
        key = ("vendor", vendor_id, None)
        if key not in self._cache:
            token = mint_token(
                self.vendor_key, sub=vendor_id, role=Role.VENDOR, now=self.clock.now(),
                ttl_seconds=TOKEN_TTL_SECONDS, audience=("allocation", "inspection"),
            )  # fmt: skip
            self._cache[key] = {"Authorization": f"Bearer {token}"}
        return self._cache[key]

    def admin(self) -> dict[str, str]:
        """Authorization header of the demo's administrator."""
        return self.staff(Role.ADMIN, "demo-admin")


class Console:
    """The story on stdout; the progress line on stderr, redrawn in place on a terminal and
    printed every ``every`` seconds otherwise."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, *, every: float = 10.0
    ):
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.interactive = self.err.isatty()
        self.every = every
        self._drawn = False
        self._last = 0.0

    def say(self, line: str) -> None:
        """A line of the story."""
        self._clear()
        print(line, file=self.out, flush=True)

    def progress(self, line: str, *, force: bool = False) -> None:
        """The progress line."""
        if self.interactive:
            columns = shutil.get_terminal_size().columns - 1
            self.err.write("\r\033[K" + clip(line, columns))
            self.err.flush()
            self._drawn = True
        elif force or time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            print(line, file=self.err, flush=True)

    def _clear(self) -> None:
        if self._drawn:
            self.err.write("\r\033[K")
            self.err.flush()
            self._drawn = False

    def finish(self, line: str) -> None:
        """The last progress line, kept."""
        self.progress(line, force=True)
        if self.interactive:
            self.err.write("\n")
            self.err.flush()
            self._drawn = False


@dataclass
class Featured:
    """What the featured vendor's day produced (for the story and for tests)."""

    vendor_id: str = ""
    name: str = ""
    district: str = ""
    market_id: str = ""
    window_id: str = ""
    stall_id: str = ""
    booking_id: str | None = None
    scans: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


class Driver:
    """Plays a day plan against the running services."""

    def __init__(
        self,
        urls: Urls,
        clock: Clock,
        plan: DayPlan,
        signer: Signer,
        console: Console,
        *,
        redis_url: str,
        redis_prefix: str = "",
        seed: int = 0,
        concurrency: int = 24,
    ):
        self.urls, self.clock, self.plan, self.signer = urls, clock, plan, signer
        self.console = console
        self.redis_url, self.redis_prefix = redis_url, redis_prefix
        self.seed = seed
        self.limit = asyncio.Semaphore(concurrency)
        #: Patrols and offices use at most a third of the calls in flight, so that the vendors'
        #: check-ins, which have a deadline, are not queued behind them at a window's start.
        self.background = asyncio.Semaphore(max(2, concurrency // 3))
        self.concurrency = concurrency
        self.tally: dict[str, DistrictTally] = {d: DistrictTally() for d in plan.districts()}
        self.booked: dict[str, str | None] = {}
        self._booked_events: dict[str, asyncio.Event] = {}
        self.vendor_bookings: dict[str, list[str]] = {}
        #: Calls that did not go as planned (a check-in after its window closed on a busy
        #: machine, a retried call); reported, not fatal.
        self.failed: list[str] = []
        #: Bookings a rule should have refused but did not: the demo fails.
        self.breaches: list[str] = []
        self.codes: dict[str, str] = {}
        self._code_locks: dict[str, asyncio.Lock] = {}
        self.featured = Featured()
        self.case_vendor: dict[str, str | None] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        #: Real seconds each answered call took.
        self.latencies: list[float] = []
        self.priority = {v.id: v.priority_group.is_priority for v in plan.vendors}
        self._http: httpx.AsyncClient | None = None
        #: Each call goes to the next replica of its service, in turn.
        self._turns: dict[str, Iterator[str]] = {
            svc: itertools.cycle(urls.all(svc)) for svc in SERVICES
        }

    def at(self, service: str) -> str:
        """The base URL of the replica of ``service`` that takes the next call (round robin)."""
        return next(self._turns[service])

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared HTTP client (only while :meth:`run` runs)."""
        if self._http is None:
            raise RuntimeError("the driver is not running")
        return self._http

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        json: Any = None,
        background: bool = False,
    ) -> httpx.Response:
        """One HTTP call, at most ``concurrency`` at a time (a third of them ``background``);
        retried on a transport error or a 5xx (every changing call the demo makes is
        idempotent or refused when repeated)."""
        for attempt in range(4):
            async with self.background if background else contextlib.nullcontext(), self.limit:
                began = time.monotonic()
                try:
                    response = await self.http.request(method, url, headers=headers, json=json)
                    self.latencies.append(time.monotonic() - began)
                except httpx.TransportError as exc:
                    if attempt == 3:
                        raise
                    error = repr(exc)
                else:
                    if response.status_code < 500 or attempt == 3:
                        return response
                    error = f"HTTP {response.status_code}"
            self.failed.append(f"{method} {url}: {error} (retrying)")
            await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    async def until(self, when: datetime) -> bool:
        """Sleep until service time ``when``; False if that is after the day's end."""
        if when >= self.plan.ends_at:
            return False
        delay = self.clock.real_seconds_for(when.timestamp() - self.clock.timestamp())
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; its failure is reported, not fatal."""
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failed.append(f"{task.get_coro()!r}: {task.exception()!r}")

    def local(self, when: datetime | None = None) -> str:
        """``HH:MM`` local time (now by default)."""
        return (when or self.clock.now()).astimezone(MARKET_TZ).strftime("%H:%M")

    def tell(self, line: str) -> None:
        """A step of the featured vendor's story."""
        self.featured.steps.append(line)
        self.console.say(f"  ▶ {self.local()} {line}")

    # -- the day --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the HTTP client the day and the reports are played with."""
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        self._http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0, pool=None))

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def run_day(self) -> None:
        """Play the day until its end (vendors created, client open)."""
        featured = self.plan.featured
        if featured is not None:
            self.featured = Featured(
                vendor_id=featured.vendor.id, name=featured.vendor.name,
                district=featured.slot.district, market_id=featured.slot.market_id,
                window_id=featured.slot.window_id, stall_id=featured.stall_id,
            )  # fmt: skip
            self.spawn(self._window_story(featured))
        for intent in self.plan.intents:
            self._booked_events[intent.key] = asyncio.Event()
        for intent in self.plan.intents:
            self.spawn(self._intent(intent))
        for probe in self.plan.probes:
            self.spawn(self._probe(probe))
        for scan in self.plan.scans:
            self.spawn(self._scan(scan))
        progress = asyncio.create_task(self._progress())
        try:
            while self.tasks:
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
            await self.until(self.plan.ends_at - timedelta(seconds=1))
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        self.console.finish(self.progress_text())

    def progress_text(self) -> str:
        """The progress line now."""
        now = self.clock.now()
        span = (self.plan.ends_at - self.plan.starts_at).total_seconds()
        done = (now - self.plan.starts_at).total_seconds() / span
        tallies = self.tally.values()
        counters = {
            "booked 预约": sum(len(t.bookings) for t in tallies),
            "checked in 签到": sum(len(t.checked_in) for t in tallies),
            "scans 巡查": sum(len(t.scans) for t in tallies),
            "warnings 警示": sum(len(t.warnings) for t in tallies),
            "cases 案件": sum(len(t.cases) for t in tallies),
        }
        phase = self.plan.phase_at(min(now, self.plan.ends_at))
        return progress_line(done, now.astimezone(MARKET_TZ), phase, counters)

    async def _progress(self) -> None:
        while True:
            self.console.progress(self.progress_text())
            await asyncio.sleep(0.5)

    async def create_vendors(self) -> None:
        """Every vendor of the plan, with verified eligibility, straight in allocation's Redis
        (an existing one, from an earlier demo on the same data, is kept)."""
        redis = redis_client(self.redis_url, 32)  # one redis-server or a cluster
        if isinstance(redis, RedisCluster):
            # redis-py's cluster client fails commands sent at once before it has learnt the
            # cluster's nodes (AttributeError in connect): learn them first
            await redis.initialize()
        store = VendorStore(redis, Keys(self.redis_prefix))
        gate = asyncio.Semaphore(32)
        now = self.clock.now()

        async def create(vendor: DemoVendor) -> None:
            async with gate:
                await store.create(
                    Vendor(
                        id=vendor.id, name=vendor.name, phone=vendor.phone,
                        priority_group=vendor.priority_group, categories=vendor.categories,
                        health_certificate_expires=vendor.health_until, suspended_until=None,
                        created_at=now,
                    ),
                    "demo-vendor-without-password",
                )  # fmt: skip

        try:
            await asyncio.gather(*(create(v) for v in self.plan.vendors))
        finally:
            await redis.aclose()

    async def catalogue_known(self, timeout: float = 90.0) -> bool:
        """Wait until windows has every market's schedule and reporting lists every market:
        their consumers have read the seeded catalogue (a late booking that comes first is
        retried and dead-lettered by windows, holding up its catalogue meanwhile)."""
        markets = sorted({s.market_id for s in self.plan.slots})
        admin = self.signer.admin()

        async def known() -> bool:
            for windows in self.urls.all("windows"):
                for market_id in markets:
                    answer = await self.request(
                        "GET", f"{windows}/v1/markets/{market_id}/schedule", headers=admin
                    )
                    if answer.status_code != 200:
                        return False
            for reporting in self.urls.all("reporting"):
                live = await self.request("GET", f"{reporting}/v1/reports/live", headers=admin)
                if live.status_code != 200:
                    return False
                if not {m["market_id"] for m in live.json()["markets"]} >= set(markets):
                    return False
            return True

        return await self.wait_for(known, timeout, pause=0.5)

    # -- vendors --------------------------------------------------------------------------------

    def _idem(self, key: str) -> str:
        return f"demo-{self.plan.day.isoformat()}-{self.seed}-{key}"

    async def book(
        self, vendor: DemoVendor, intent_key: str, stall_id: str, district: str, window_id: str
    ) -> tuple[str | None, str]:
        """Book; (booking id, '') or (None, the refusal's code)."""
        response = await self.request(
            "POST",
            f"{self.at('allocation')}/v1/bookings",
            headers={**self.signer.vendor(vendor.id), "Idempotency-Key": self._idem(intent_key)},
            json={"stall_id": stall_id, "date": self.plan.day.isoformat(), "window_id": window_id},
        )
        if response.status_code in (200, 201):
            booking_id: str = response.json()["id"]
            self.tally[district].bookings[booking_id] = self.priority[vendor.id]
            self.vendor_bookings.setdefault(vendor.id, []).append(booking_id)
            return booking_id, ""
        code = problem_code(response)
        self.tally[district].refused[code] += 1
        return None, code

    async def _intent(self, intent: Intent) -> None:
        done = self._booked_events[intent.key]
        try:
            if not await self.until(intent.book_at):
                return
            booking_id, code = await self._book_intent(intent)
            self.booked[intent.key] = booking_id
        finally:
            done.set()
        if booking_id is None:
            self.failed.append(f"booking {intent.stall_id} {intent.slot.window_id}: {code}")
            return
        # The code printed on the stall, read now rather than in the rush at the window's start.
        await self.stall_code(intent.stall_id)
        if intent.featured:
            self.featured.booking_id = booking_id
            self.tell(
                f"{intent.vendor.name} ({intent.vendor.id}) 预约 booked {intent.stall_id} for the "
                f"{intent.slot.window_id} window {self.local(intent.slot.starts_at)}–"
                f"{self.local(intent.slot.ends_at)}: {booking_id}"
            )
        if intent.cancel_at is not None:
            if await self.until(intent.cancel_at):
                await self._cancel(intent, booking_id)
        elif intent.check_in_at is not None and await self.until(intent.check_in_at):
            await self._check_in(intent, booking_id)

    async def _book_intent(self, intent: Intent) -> tuple[str | None, str]:
        district, window = intent.slot.district, intent.slot.window_id
        booking_id, code = await self.book(
            intent.vendor, intent.key, intent.stall_id, district, window
        )
        attempts = 1
        # A walk-in may come before allocation has released the no-show's stall.
        while booking_id is None and intent.walk_in and code == "stall_taken" and attempts < 5:
            self.tally[district].refused["stall_taken"] -= 1
            if not await self.until(self.clock.now() + WALK_IN_RETRY):
                break
            booking_id, code = await self.book(
                intent.vendor, intent.key, intent.stall_id, district, window
            )
            attempts += 1
        return booking_id, code

    async def _cancel(self, intent: Intent, booking_id: str) -> None:
        response = await self.request(
            "DELETE",
            f"{self.at('allocation')}/v1/bookings/{booking_id}",
            headers=self.signer.vendor(intent.vendor.id),
        )
        if response.status_code == 200:
            late: bool = response.json()["late_cancellation"]
            self.tally[intent.slot.district].cancelled[booking_id] = late
        else:
            self.failed.append(f"cancel {booking_id}: {problem_code(response)}")

    async def stall_code(self, stall_id: str) -> str:
        """The text of the stall's printed code (allocation's admin endpoint, once a stall)."""
        lock = self._code_locks.setdefault(stall_id, asyncio.Lock())
        async with lock:
            if stall_id not in self.codes:
                response = await self.request(
                    "GET",
                    f"{self.at('allocation')}/v1/admin/stalls/{stall_id}/code",
                    headers=self.signer.admin(),
                )
                response.raise_for_status()
                self.codes[stall_id] = response.json()["code"]
        return self.codes[stall_id]

    async def _check_in(self, intent: Intent, booking_id: str) -> None:
        response = await self.request(
            "POST",
            f"{self.at('allocation')}/v1/bookings/{booking_id}/check-in",
            headers=self.signer.vendor(intent.vendor.id),
            json={"code": await self.stall_code(intent.stall_id)},
        )
        if response.status_code == 200:
            self.tally[intent.slot.district].checked_in.add(booking_id)
            if intent.featured:
                self.tell(f"扫码签到 checked in by scanning the code of {intent.stall_id}")
        else:
            self.failed.append(f"check-in {booking_id} at {self.local()}: {problem_code(response)}")

    async def _probe(self, probe: Probe) -> None:
        if probe.after is not None:
            await self._booked_events[probe.after].wait()
            if self.booked.get(probe.after) is None:
                return  # the booking that should stand in the way was not made
        if not await self.until(probe.at):
            return
        booking_id, code = await self.book(
            probe.vendor, probe.key, probe.stall_id, probe.slot.district, probe.slot.window_id
        )
        if booking_id is not None:
            self.breaches.append(
                f"{probe.stall_id} {probe.slot.window_id} was booked by {probe.vendor.id} "
                f"where {probe.expect} was due: {booking_id}"
            )
        elif code != probe.expect:
            self.failed.append(f"refusal {probe.key}: {code}, not {probe.expect}")

    # -- the featured vendor's window -----------------------------------------------------------

    async def _window_story(self, intent: Intent) -> None:
        """Tell when the featured window opens and closes, as the windows service saw it."""
        slot = intent.slot
        for boundary, kind in ((slot.starts_at, "opened"), (slot.ends_at, "closed")):
            if not await self.until(boundary + timedelta(minutes=3)):
                return
            response = await self.request(
                "GET",
                f"{self.at('windows')}/v1/markets/{slot.market_id}/timeline"
                f"?date={self.plan.day.isoformat()}",
                headers=self.signer.staff(Role.ADMIN, "demo-admin"),
            )
            state, published = "?", "?"
            if response.status_code == 200:
                for instance in response.json():
                    if instance.get("window_id") != slot.window_id:
                        continue
                    state = instance.get("state", "?")
                    for item in instance.get("boundaries", []):
                        if item.get("kind") == kind and item.get("published_at"):
                            published = self.local(_time(item["published_at"]))
            label = "开市 opened" if kind == "opened" else "收市 closed"
            self.tell(
                f"{slot.market_id} {slot.window_id} window {label}: window.{kind} published at "
                f"{published}, the windows service shows it {state}"
            )

    # -- patrols and offices --------------------------------------------------------------------

    async def _scan(self, scan: PlannedScan) -> None:
        if not await self.until(scan.at):
            return
        if scan.forged:
            signature = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode().rstrip("=")
            code = f"ZHSC1.{scan.stall_id}.1.{signature}"
        else:
            code = await self.stall_code(scan.stall_id)
        body: dict[str, Any] = {"code": code, "occupied": scan.occupied}
        if scan.vendor_id:
            body["vendor_id"] = scan.vendor_id
        if scan.identity_number:
            body["identity_number"] = scan.identity_number
        if scan.violations:
            body["violations"] = list(scan.violations)
        headers = {
            **self.signer.staff(Role.PATROL, f"patrol-{scan.district}-1", scan.district),
            "Idempotency-Key": self._idem(scan.key),
        }
        for _ in range(10):  # inspection may not have read a market yet just after the start
            response = await self.request(
                "POST", f"{self.at('inspection')}/v1/scans", headers=headers, json=body,
                background=True,
            )  # fmt: skip
            if problem_code(response) != "market_unknown":
                break
            await asyncio.sleep(1.0)
        if response.status_code not in (200, 201):
            self.failed.append(f"scan {scan.key}: {problem_code(response)}")
            return
        answer = response.json()
        tally = self.tally[answer["district"]]
        tally.scans[answer["scan_id"]] = answer["outcome"]
        featured = self.plan.featured
        is_featured = featured is not None and scan.intent == featured.key
        for warning in answer["warnings"]:
            tally.warnings.add(warning["warning_id"])
        if is_featured:
            self.featured.scans.append({"scan_id": answer["scan_id"], "outcome": answer["outcome"]})
            self.featured.warnings += [w["warning_id"] for w in answer["warnings"]]
            self.featured.cases += [c["case_id"] for c in answer["cases"]]
            found = "; ".join(
                [f"警示 warning {w['warning_id']} ({w['violation']})" for w in answer["warnings"]]
                + [f"立案 case {c['case_id']} ({c['violation']})" for c in answer["cases"]]
            )
            self.tell(
                f"巡查扫码 patrol scan of {scan.stall_id}: {answer['outcome']}"
                + (f" → {found}" if found else "")
            )
        for case in answer["cases"]:
            opened = _time(case["opened_at"])
            tally.cases[case["case_id"]] = CaseTally(opened, _time(case["deadline"]))
            self.case_vendor[case["case_id"]] = case.get("vendor_id")
            self.spawn(self._case(answer["district"], case["case_id"], opened, is_featured))

    async def _case(self, district: str, case_id: str, opened: datetime, featured: bool) -> None:
        """The district office takes the case round its loop."""
        tally = self.tally[district].cases[case_id]
        rng = random.Random(f"{self.seed}:{case_id}")
        steps = case_steps(opened, tally.deadline, self.plan.ends_at, rng, featured=featured)
        for when, step in steps:
            if not await self.until(when):
                return
            if step is Step.EVALUATE:
                await self._evaluate(district, case_id, rng, featured)
                continue
            actor = self.signer.staff(Role.DISTRICT, f"{district}-{STEP_ACTORS[step]}", district)
            response = await self.request(
                "POST",
                f"{self.at('inspection')}/v1/cases/{case_id}/transitions",
                headers=actor,
                json={"action": step.value, "note": STEP_NOTES[step]},
                background=True,
            )
            if response.status_code != 200:
                self.failed.append(f"case {case_id} {step.value}: {problem_code(response)}")
                return
            case = response.json()
            at = _time(case["history"][-1]["at"])
            tally.steps.append(step.value)
            if step is Step.HANDLE:
                handled = _time(case["handled_at"])
                tally.handled.append((handled, handled <= tally.deadline))
            elif step is Step.SEND_BACK:
                tally.sent_back.append(at)
            elif step is Step.CLOSE:
                tally.closed_at = at
            if featured:
                on_time = "on time 按时" if case["on_time"] else "late 超时"
                self.tell(f"区执法办 district office: case {case_id} → {case['state']} ({on_time})")

    async def _evaluate(
        self, district: str, case_id: str, rng: random.Random, featured: bool
    ) -> None:
        vendor = self.case_vendor.get(case_id)
        score = evaluation_score(rng)
        by_vendor = vendor is not None and (featured or rng.random() < 0.6)
        headers = (
            self.signer.vendor(vendor)
            if by_vendor and vendor is not None
            else self.signer.staff(Role.DISTRICT, f"{district}-{HANDLER}", district)
        )
        response = await self.request(
            "POST",
            f"{self.at('inspection')}/v1/cases/{case_id}/evaluation",
            headers=headers,
            json={"score": score},
            background=True,
        )
        if response.status_code != 200:
            self.failed.append(f"evaluation of {case_id}: {problem_code(response)}")
            return
        self.tally[district].cases[case_id].score = score
        if featured:
            who = "摊贩 the vendor" if by_vendor else "区执法办 the office"
            self.tell(f"评价 {who} scored case {case_id}: {score}/5")

    # -- the end --------------------------------------------------------------------------------

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], timeout: float, pause: float = 1.0
    ) -> bool:
        """Call ``check`` until it is true or ``timeout`` real seconds passed."""
        deadline = time.monotonic() + timeout
        while True:
            if await check():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)


def problem_code(response: httpx.Response) -> str:
    """The problem+json code of a refusal (or the HTTP status)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if code else f"HTTP {response.status_code}"


def _time(text: str) -> datetime:
    """An ISO 8601 time from an answer, aware."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
