"""Start ``stallctl up`` as a real subprocess on free ports with its own data folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from stallctl import procs
from stallctl.runtime import INFRA, SERVICES, pid_alive, tail
from stallkit.auth import Role
from stalltest.tokens import bearer, dev_token

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Variables that would make the runner use something other than its own broker and redis.
SCRUBBED = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "REDIS_URL",
    "STALL_TOPIC_PREFIX",
    "STALL_REDIS_PREFIX",
    "STALL_DATA_DIR",
    "STALL_JWT_SECRET",
    "STALL_TOKEN_JWKS",
    "STALL_TOKEN_JWKS_FILE",
    "STALL_STAFF_SIGNING_KEY",
    "ALLOCATION_TOKEN_SIGNING_KEY",
    "STALL_MODE",
)


class Runner:
    """One ``stallctl up`` process and what it started."""

    def __init__(self, data_dir: Path, ports: dict[str, int]):
        self.data_dir = data_dir
        self.ports = ports
        self.proc: subprocess.Popen[bytes] | None = None
        #: Pid of ``stallctl up`` itself (in the background, ``proc`` is the shell around it).
        self.pid: int | None = None
        self.output = data_dir.parent / f"{data_dir.name}-runner.log"
        self.known_pids: set[int] = set()

    def url(self, service: str) -> str:
        """Base URL of a service of this runner."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, *extra: str, background: bool = False) -> None:
        """Launch ``python -m stallctl.cli up`` with this runner's ports and data folder.

        With ``background``, as a background job (``&``) of a non-interactive bash that waits
        for it: such a job starts with SIGINT ignored, as it does from a script.
        """
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env["PYTHONUNBUFFERED"] = "1"
        args = [sys.executable, "-m", "stallctl.cli", "up", "--data-dir", str(self.data_dir)]
        for name, port in self.ports.items():
            args += [f"--{name}-port", str(port)]
        args += ["--ready-timeout", "150", *extra]
        pid_file = self.output.with_suffix(".pid")
        if background:
            env["RUNNER_PID_FILE"] = str(pid_file)
            args = ["bash", "-c", '"$@" & echo $! > "$RUNNER_PID_FILE"; wait $!', "bash", *args]
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
            )
        self.pid = self.proc.pid
        if background:
            deadline = time.monotonic() + 10
            while not pid_file.exists() or not pid_file.read_text().strip():
                if time.monotonic() > deadline:
                    pytest.fail("the shell did not start stallctl up in the background")
                time.sleep(0.05)
            self.pid = int(pid_file.read_text())

    def text(self) -> str:
        """What the runner printed so far."""
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def diagnostics(self) -> str:
        """Runner output and the tail of every child's log, for assertion messages."""
        parts = [f"--- runner output ---\n{self.text()[-6000:]}"]
        for name in (*INFRA, *SERVICES):
            log = self.data_dir / "logs" / f"{name}.log"
            if log.exists():
                parts.append(f"--- {name}.log ---\n{tail(log, 25)}")
        return "\n".join(parts)

    def child_pids(self) -> set[int]:
        """Pids of the runner's children: its pid files and /proc's children lists."""
        pids: set[int] = set()
        for pid_file in (self.data_dir / "run").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pids.add(int(pid_file.read_text().strip()))
        if self.pid is not None:
            for task in Path(f"/proc/{self.pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in (task / "children").read_text().split())
        self.known_pids |= pids
        return pids

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Poll every service's /readyz until all answer 200; return the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        deadline = started + timeout
        pending = set(SERVICES)
        with httpx.Client(timeout=2.0) as client:
            while pending and time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(
                        f"stallctl up exited with {self.proc.returncode} before being ready\n"
                        + self.diagnostics()
                    )
                for svc in sorted(pending):
                    with contextlib.suppress(httpx.TransportError):
                        if client.get(self.url(svc) + "/readyz").status_code == 200:
                            pending.discard(svc)
                time.sleep(0.25)
        if pending:
            pytest.fail(f"not ready after {timeout}s: {sorted(pending)}\n" + self.diagnostics())
        self.child_pids()
        return time.monotonic() - started

    def wait_banner(self, timeout: float = 90.0) -> None:
        """Wait until the runner says it is ready (after seeding)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while "ready in" not in self.text():
            if self.proc.poll() is not None:
                pytest.fail(
                    f"stallctl up exited with {self.proc.returncode}\n" + self.diagnostics()
                )
            if time.monotonic() > deadline:
                pytest.fail("stallctl up never printed its banner\n" + self.diagnostics())
            time.sleep(0.25)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the runner only (not its children, nor a shell around it)."""
        assert self.pid is not None
        self.child_pids()
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        """Wait for the runner to exit; return its exit code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"stallctl up did not exit within {timeout}s\n" + self.diagnostics())

    def wait_children_gone(self, pids: set[int], timeout: float = 15.0) -> set[int]:
        """Wait until none of ``pids`` is alive; return those still alive at the deadline."""
        deadline = time.monotonic() + timeout
        alive = {p for p in pids if pid_alive(p)}
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = {p for p in alive if pid_alive(p)}
        return alive

    def kill_everything(self) -> None:
        """Teardown: SIGKILL the runner and any child still alive, whatever the test did."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.child_pids()
                if self.pid is not None and self.pid != self.proc.pid and pid_alive(self.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                self.proc.kill()
            self.proc.wait(10)
        for pid in self.known_pids:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runner_factory(tmp_path: Path) -> Iterator[Any]:
    """Make :class:`Runner` objects on fresh free ports; all are killed after the test."""
    runners: list[Runner] = []

    def make(data_dir: Path | None = None, ports: dict[str, int] | None = None) -> Runner:
        names = (*INFRA, *SERVICES)
        runner = Runner(
            data_dir or tmp_path / "data",
            ports or dict(zip(names, procs.free_ports(6), strict=True)),
        )
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.kill_everything()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Authorization header with a development admin token."""
    return bearer(dev_token(Role.ADMIN, "e2e", now=datetime.now(UTC)))
