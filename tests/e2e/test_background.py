"""`stallctl up` started as a background job (`stallctl up &` in a script) stops on SIGINT.

A background job of a non-interactive shell starts with SIGINT ignored, and Python keeps an
ignored SIGINT ignored: the runner has to take SIGINT back itself.
"""

from __future__ import annotations

import fcntl
import signal
import subprocess
from typing import Any

import pytest

from stallctl import procs

pytestmark = pytest.mark.e2e


def background_jobs_ignore_sigint() -> bool:
    """The premise: what a `&` job of ``bash -c`` starts with (its SigIgn mask in /proc)."""
    status = subprocess.run(
        ["bash", "-c", "grep SigIgn /proc/self/status & wait"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    mask = int(status.split()[-1], 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


def test_background_up_stops_on_sigint_and_leaves_nothing_behind(runner_factory: Any) -> None:
    """SIGINT stops a background `up` as Ctrl-C does: exit 0, no child, ports and lock free."""
    assert background_jobs_ignore_sigint()
    runner = runner_factory()
    runner.start("--no-seed", background=True)
    runner.wait_ready()
    runner.wait_banner()
    children = runner.child_pids()
    assert len(children) >= 6, f"expected broker, redis and 4 services, got {children}"

    runner.signal(signal.SIGINT)
    code = runner.wait_exit(60)
    assert code == 0, runner.diagnostics()
    assert "stopping" in runner.text()
    alive = runner.wait_children_gone({runner.pid, *children}, timeout=5.0)
    assert not alive, f"left after SIGINT: {alive}\n{runner.diagnostics()}"
    assert not list((runner.data_dir / "run").glob("*.pid")), "pid files left behind"
    busy = {name: port for name, port in runner.ports.items() if procs.port_open(port)}
    assert not busy, f"ports still in use after SIGINT: {busy}"
    with (runner.data_dir / "run" / "stallctl.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
