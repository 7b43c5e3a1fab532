"""``stallctl demo`` as a subprocess: a reduced market day (two morning markets in two
districts, 120 vendors, the clock 600× real time) played through the public APIs, then checked
through those APIs while the demo keeps the system running.

The day's numbers in each district's daily report equal the driver's own tally; bookings were
made, checked in and left as no-shows; no stall was held twice; warnings and cases exist and the
closed cases went through every step. One vendor is followed end to end: booked, window opened,
checked in, scanned compliant, window closed, found still vending (a warning), found again (a
case that goes round the loop, sent back once); the district office sees every step on its SSE
feed, in a signed webhook delivery to a receiver run here, and in its daily report. A second,
smaller demo run with ``--exit`` (started once the first day is over) prints its report and
exits 0, leaving nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from stallctl import procs
from stallctl.runtime import pid_alive
from stallkit.auth import Role
from stallkit.clock import Clock
from stalltest import demo_process
from stalltest.sse import SseReader
from stalltest.tokens import bearer, dev_token

#: Setting up the module runs a whole (reduced) day: more than the suite's default timeout allows.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRUBBED = (
    "KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "STALL_TOPIC_PREFIX", "STALL_REDIS_PREFIX",
    "STALL_DATA_DIR", "STALL_JWT_SECRET", "STALL_TOKEN_JWKS", "STALL_TOKEN_JWKS_FILE",
    "STALL_STAFF_SIGNING_KEY", "ALLOCATION_TOKEN_SIGNING_KEY", "STALL_MODE",
    "STALL_CLOCK_SPEED", "STALL_CLOCK_ANCHOR", "STALL_CLOCK_OFFSET_SECONDS",
)  # fmt: skip
HELD = "press Ctrl-C to stop"
DEMO_SECONDS = 300.0
FULL_LOOP = ["file", "dispatch", "handle", "verify", "close"]
FOLLOWED_TYPES = [
    "booking.created", "booking.checked_in", "window.opened", "window.closed",
    "inspection.scan.recorded", "inspection.warning.issued", "inspection.case.opened",
    "inspection.case.filed", "inspection.case.dispatched", "inspection.case.handled",
    "inspection.case.sent_back", "inspection.case.verified", "inspection.case.closed",
    "inspection.case.evaluated",
]  # fmt: skip


#: The followed vendor's events: booked, checked in, window opened and closed, three scans, a
#: warning, and the case opened, filed, dispatched, handled, sent back (to dispatched), handled
#: again, verified, closed, evaluated.
FOLLOWED_EVENTS = 17


class Receiver:
    """A tiny HTTP endpoint that keeps every webhook delivery (headers and body)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/markets"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Demo:
    """One ``stallctl demo`` subprocess and what it left."""

    data_dir: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.out"

    @property
    def summary_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-summary.json"

    def start(self, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env["PYTHONUNBUFFERED"] = "1"
        ports = [str(p) for p in procs.free_ports(6)]
        names = ("broker", "redis", "allocation", "windows", "inspection", "reporting")
        args = [
            sys.executable, "-m", "stallctl.cli", "demo", *self.args,
            "--data-dir", str(self.data_dir), "--summary-json", str(self.summary_file),
            "--ready-timeout", "150", *extra,
        ]  # fmt: skip
        for name, port in zip(names, ports, strict=True):
            args += [f"--{name}-port", port]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
            )

    def text(self) -> str:
        return demo_process.output_text(self.log)

    def diagnostics(self) -> str:
        return demo_process.diagnostics(self.log, self.data_dir, 20)

    def child_pids(self) -> set[int]:
        return demo_process.child_pids(self.data_dir)

    def wait_for(self, marker: str, timeout: float = DEMO_SECONDS) -> None:
        """Wait until the output shows ``marker``, or the process exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while marker not in self.text():
            if self.proc.poll() is not None:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not get to {marker!r}\n" + self.diagnostics())
            time.sleep(0.5)

    def load_summary(self) -> dict[str, Any]:
        assert self.summary_file.exists(), self.diagnostics()
        self.summary = json.loads(self.summary_file.read_text("utf-8"))
        return self.summary

    def kill(self) -> None:
        demo_process.kill(self.proc, self.data_dir)


@dataclass
class Day:
    """The shared demo run, its webhook receiver, and tokens on its clock."""

    demo: Demo
    exit_demo: Demo
    receiver: Receiver

    @property
    def summary(self) -> dict[str, Any]:
        return self.demo.summary

    def url(self, service: str) -> str:
        return str(self.summary["urls"][service])

    def clock(self) -> Clock:
        c = self.summary["clock"]
        return Clock(offset_seconds=c["offset"], speed=c["speed"], anchor=c["anchor"])

    def token(self, role: Role, sub: str, district: str | None = None) -> dict[str, str]:
        return bearer(
            dev_token(role, sub, district=district, now=self.clock().now(), ttl_seconds=86400 * 30)
        )

    def admin(self) -> dict[str, str]:
        return self.token(Role.ADMIN, "e2e-admin")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    """The reduced demo (and the ``--exit`` one beside it), run once for the module."""
    base = tmp_path_factory.mktemp("demo")
    receiver = Receiver()
    demo = Demo(base / "day", ["--markets", "XZ-06,DM-05", "--vendors", "120", "--speed", "600"])
    exit_demo = Demo(base / "exit", ["--markets", "GX-04", "--vendors", "40", "--speed", "900"])
    try:
        demo.start("--webhook", receiver.url)
        demo.wait_for(HELD)
        assert demo.proc is not None
        if demo.proc.poll() is not None:
            pytest.fail(f"the demo exited with {demo.proc.returncode}\n" + demo.diagnostics())
        # One day at a time (two cores): the --exit one runs while the tests read the first.
        exit_demo.start("--exit")
        demo.load_summary()
        yield Day(demo, exit_demo, receiver)
        children = demo.child_pids()
        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(60) == 0, demo.diagnostics()
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in children if pid_alive(p)], "children left after Ctrl-C"
        assert not list((demo.data_dir / "run").glob("*.pid"))
    finally:
        demo.kill()
        exit_demo.kill()
        receiver.close()


def test_the_report_agrees_with_the_driver_and_shows_the_day(day: Day) -> None:
    """Every district's daily figures, read again now, equal the driver's tally."""
    text = day.demo.text()
    assert "✓ 报表与演示记录一致" in text, day.demo.diagnostics()
    assert "香洲区 xiangzhou" in text
    assert "斗门区 doumen" in text
    summary = day.summary
    assert set(summary["districts"]) == {"xiangzhou", "doumen"}
    with httpx.Client(timeout=30) as client:
        for district, seen in summary["districts"].items():
            assert seen["mismatches"] == []
            tally = seen["tally"]
            report = client.get(
                f"{day.url('reporting')}/v1/reports/daily",
                params={"district": district, "date": summary["date"]},
                headers=day.token(Role.DISTRICT, f"{district}-office-1", district),
            )
            assert report.status_code == 200, report.text
            total = report.json()["total"]
            for name in (
                "bookings",
                "priority_bookings",
                "check_ins",
                "no_shows",
                "cancellations",
                "scans",
                "scans_by_outcome",
                "warnings",
                "cases_opened",
                "cases_closed",
                "cohort_closed",
                "evaluations",
            ):
                assert total[name] == tally[name], (district, name)
            assert total["bookable_stall_windows"] == {"xiangzhou": 38, "doumen": 24}[district]
    totals = Counter[str]()
    for seen in summary["districts"].values():
        totals.update({k: v for k, v in seen["tally"].items() if isinstance(v, int)})
    assert totals["bookings"] > 40
    assert totals["check_ins"] > 30
    assert totals["no_shows"] > 0
    assert totals["warnings"] > 0
    assert totals["cases_opened"] > 0
    assert totals["cases_closed"] > 0


def test_bookings_were_checked_in_or_marked_no_shows_and_no_stall_was_held_twice(
    day: Day,
) -> None:
    """Each vendor's bookings, as allocation shows them to the vendor: checked in, no-shows,
    cancelled; never two active bookings of one stall and window."""
    summary = day.summary
    clock = day.clock()
    states: Counter[str] = Counter()
    active: Counter[tuple[str, str, str]] = Counter()
    with httpx.Client(timeout=30) as client:
        for vendor_id, ids in summary["bookings"].items():
            token = bearer(dev_token(Role.VENDOR, vendor_id, now=clock.now(), ttl_seconds=86400))
            answer = client.get(f"{day.url('allocation')}/v1/bookings", headers=token)
            assert answer.status_code == 200, answer.text
            mine = {b["id"]: b for b in answer.json() if b["date"] == summary["date"]}
            assert set(ids) <= set(mine)
            for booking in mine.values():
                states[booking["state"]] += 1
                if booking["state"] in ("booked", "checked_in"):
                    active[(booking["stall_id"], booking["date"], booking["window_id"])] += 1
    assert states["checked_in"] > 30
    assert states["no_show"] > 0
    assert states["booked"] == 0  # every window of the day is past its check-in deadline
    assert max(active.values()) == 1


def test_warnings_and_cases_exist_and_closed_cases_went_round_the_loop(day: Day) -> None:
    """Closed cases went file → dispatch → handle → verify → close (some sent back between)."""
    sent_back = 0
    closed = 0
    with httpx.Client(timeout=30) as client:
        for district in day.summary["districts"]:
            office = day.token(Role.DISTRICT, f"{district}-office-1", district)
            page = client.get(
                f"{day.url('inspection')}/v1/cases",
                params={"district": district, "state": "closed", "limit": 200},
                headers=office,
            )
            assert page.status_code == 200, page.text
            for case in page.json()["items"]:
                closed += 1
                actions = [h["action"] for h in case["history"]]
                loop = [a for a in actions if a != "send_back"]
                if "send_back" in actions:
                    sent_back += 1
                    back = actions.index("send_back")
                    assert actions[back - 1] == "handle"
                    assert actions[back + 1] == "handle"
                    loop = [a for i, a in enumerate(actions) if i not in (back, back + 1)]
                assert loop[0] == "open" or loop[0] == "file"
                assert [a for a in loop if a != "open"] == FULL_LOOP, actions
                assert case["handled_by"] != case["history"][-2]["actor_id"]  # not its verifier
    assert closed > 0
    assert sent_back > 0


def test_the_followed_vendor_is_seen_by_the_district_office(day: Day) -> None:
    """Booking, check-in, a compliant scan, overtime twice (a warning, then a case that went
    round the loop and was evaluated), in allocation, inspection and the daily report."""
    followed = day.summary["featured"]
    district, vendor_id = followed["district"], followed["vendor_id"]
    assert followed["booking_id"]
    assert [s["outcome"] for s in followed["scans"]] == ["compliant", "overtime", "overtime"]
    assert len(followed["warnings"]) == 1
    assert len(followed["cases"]) == 1
    case_id = followed["cases"][0]
    clock = day.clock()
    vendor = bearer(dev_token(Role.VENDOR, vendor_id, now=clock.now(), ttl_seconds=86400))
    office = day.token(Role.DISTRICT, f"{district}-office-1", district)
    with httpx.Client(timeout=30) as client:
        booking = client.get(
            f"{day.url('allocation')}/v1/bookings/{followed['booking_id']}", headers=vendor
        ).json()
        assert booking["state"] == "checked_in"
        assert booking["stall_id"] == followed["stall_id"]
        case = client.get(f"{day.url('inspection')}/v1/cases/{case_id}", headers=office).json()
        assert case["state"] == "closed"
        assert case["violation"] == "overtime_vending"
        assert case["vendor_id"] == vendor_id
        assert [h["action"] for h in case["history"]][-7:] == [
            "file", "dispatch", "handle", "send_back", "handle", "verify", "close",
        ]  # fmt: skip
        assert case["evaluation"] is not None
        mine = client.get(f"{day.url('inspection')}/v1/me/warnings", headers=vendor).json()
        assert {i.get("warning_id") or i.get("case_id") for i in mine} == {
            followed["warnings"][0],
            case_id,
        }
        report = client.get(
            f"{day.url('reporting')}/v1/reports/daily",
            params={"district": district, "date": day.summary["date"]},
            headers=office,
        ).json()
    market = next(m for m in report["markets"] if m["market_id"] == followed["market_id"])
    figures = market["figures"]
    assert figures["violations_by_type"]["overtime_vending"] >= 2  # the warning and the case
    assert figures["scans_by_outcome"]["overtime"] >= 2
    assert figures["cases_closed"] >= 1
    assert figures["check_ins"] >= 1


def _about_followed(entry: dict[str, Any], followed: dict[str, Any]) -> str | None:
    """The followed vendor's event this feed entry is, named by type and id; None if not."""
    data = entry["event"]["data"]
    kind = entry["type"]
    if kind.startswith("booking."):
        return kind if data.get("booking_id") == followed["booking_id"] else None
    if kind.startswith("window."):
        ours = data.get("window_id") == followed["window_id"]
        return kind if ours and data.get("date") == followed["date"] else None
    if kind == "inspection.scan.recorded":
        scans = {s["scan_id"] for s in followed["scans"]}
        return f"{kind}:{data['scan_id']}" if data.get("scan_id") in scans else None
    if kind == "inspection.warning.issued":
        return kind if data.get("warning_id") in followed["warnings"] else None
    if kind.startswith("inspection.case."):
        return f"{kind}:{entry['id']}" if data.get("case_id") in followed["cases"] else None
    return None


def _check_followed(seen: list[str], followed: dict[str, Any]) -> None:
    kinds = Counter(s.split(":")[0] for s in seen)
    assert kinds["booking.created"] == 1, seen
    assert kinds["booking.checked_in"] == 1, seen
    assert kinds["window.opened"] == 1, seen
    assert kinds["window.closed"] == 1, seen
    assert kinds["inspection.scan.recorded"] == 3, seen
    assert kinds["inspection.warning.issued"] == 1, seen
    for step in ("opened", "filed", "dispatched", "sent_back", "verified", "closed", "evaluated"):
        assert kinds[f"inspection.case.{step}"] == 1, (step, seen)
    assert kinds["inspection.case.handled"] == 2, seen
    assert len(seen) == FOLLOWED_EVENTS


async def test_the_district_feed_and_webhook_carry_the_followed_vendors_day(day: Day) -> None:
    """The office's SSE feed (from the start, filtered to the market and the types, a bounded
    number of events) and its webhook receiver got every step, the deliveries signed."""
    followed = day.summary["featured"]
    followed["date"] = day.summary["date"]
    district, market = followed["district"], followed["market_id"]
    office = day.token(Role.DISTRICT, f"{district}-office-1", district)
    seen: list[str] = []
    params = {"from": "start", "markets": market, "types": ",".join(FOLLOWED_TYPES)}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client,
        client.stream(
            "GET", f"{day.url('reporting')}/v1/feeds/{district}/events", params=params,
            headers=office,
        ) as response,
    ):  # fmt: skip
        assert response.status_code == 200
        reader = SseReader(response)
        for _ in range(600):  # bounded: the market's whole day is far fewer entries
            try:
                event = await reader.next(timeout=10)
            except TimeoutError:
                break
            if event is None:
                break
            entry = event.json()
            assert entry["market_id"] == market
            assert event.event in FOLLOWED_TYPES
            name = _about_followed(entry, followed)
            if name is not None:
                seen.append(name)
            if len(seen) >= FOLLOWED_EVENTS:
                break
    _check_followed(seen, followed)

    secret = base64.b64decode(day.summary["webhook"]["secret"].removeprefix("whsec_"))
    delivered: list[str] = []
    for headers, body in list(day.receiver.deliveries):
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
        assert f"v1,{expected}" in headers["webhook-signature"].split(" ")
        entry = json.loads(body)
        assert entry["market_id"] == market
        name = _about_followed(entry, followed)
        if name is not None and entry["type"] in FOLLOWED_TYPES:
            delivered.append(name)
    _check_followed(delivered, followed)


def test_the_district_offices_followed_their_feeds_all_day(day: Day) -> None:
    """Each office's live SSE feed, kept open from the start of the day: every entry once, in
    the order of its log read again at the end, the day's bookings and scans among them."""
    feeds = day.summary["feeds"]
    assert set(feeds) == set(day.summary["districts"])
    assert "各区实时订阅 district offices followed their feeds" in day.demo.text()
    for district, feed in feeds.items():
        assert feed["matches"] is True, (district, feed)
        assert feed["received"] == feed["distinct"] == feed["reread"] > 0
        tally = day.summary["districts"][district]["tally"]
        assert feed["by_type"]["booking.created"] >= tally["bookings"]
        assert feed["by_type"]["inspection.scan.recorded"] == tally["scans"]
        assert feed["by_type"]["window.opened"] >= 1


def test_oversubscribed_windows_are_drawn_once_and_the_draws_verify(day: Day) -> None:
    """Each district's draw for a window two days on: more applicants than stalls, drawn at
    20:00, the winners booked into the stalls the draw gave them, the others told, and the
    published draw re-runs to the same result."""
    draws = day.summary["draws"]
    assert {d["district"] for d in draws} == {"xiangzhou", "doumen"}
    assert "摇号 lottery for" in day.demo.text()
    with httpx.Client(timeout=30) as client:
        for draw in draws:
            assert draw["applied"] == draw["planned"] > draw["stalls"], draw
            assert draw["state"] == "done", draw
            assert draw["verified"] is True, draw
            assert 0 < draw["awards"] <= draw["stalls"]
            lost = draw["applied"] - draw["awards"]
            assert draw["statuses"] == {"won": draw["awards"], "lost": lost}, draw
            assert len(set(draw["bookings"])) == draw["awards"]
            path = f"{draw['market_id']}/{draw['date']}/{draw['window_id']}"
            published = client.get(f"{day.url('allocation')}/v1/draws/{path}").json()
            awarded = {a["stall_id"] for a in published["result"]["awards"]}
            assert len(awarded) == draw["awards"]  # no stall drawn twice
            availability = client.get(
                f"{day.url('allocation')}/v1/markets/{draw['market_id']}/availability",
                params={"date": draw["date"]},
            )
            assert availability.status_code == 200, availability.text
            window = next(
                w for w in availability.json()["windows"] if w["window_id"] == draw["window_id"]
            )
            assert window["booked"] == draw["awards"]
            assert not awarded & set(window["free_stalls"])


def test_the_demo_with_exit_prints_its_report_and_leaves_nothing_running(day: Day) -> None:
    """``--exit``: the report, the verdict, exit code 0, no child left, the summary written."""
    demo = day.exit_demo
    assert demo.proc is not None
    try:
        code = demo.proc.wait(DEMO_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail("the --exit demo did not exit\n" + demo.diagnostics())
    text = demo.text()
    assert code == 0, demo.diagnostics()
    assert "日报 Daily report" in text
    assert "高新区 gaoxin" in text
    assert "✓ 报表与演示记录一致" in text
    assert HELD not in text
    assert not list((demo.data_dir / "run").glob("*.pid"))
    summary = demo.load_summary()
    assert summary["districts"]["gaoxin"]["tally"]["bookings"] > 0
