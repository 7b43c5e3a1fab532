"""What the e2e tests need of a ``stallctl demo`` subprocess: its output, its children (the pid
files under ``<data_dir>/run``), a diagnostic for a failed assertion, and a kill that leaves
nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from stallctl.runtime import pid_alive, tail


def output_text(path: Path) -> str:
    """What the process wrote to ``path`` so far (empty before it starts)."""
    return path.read_text(errors="replace") if path.exists() else ""


def diagnostics(output: Path, data_dir: Path, lines: int = 20) -> str:
    """The end of the process's output and of each child's log."""
    parts = [f"--- demo output ---\n{output_text(output)[-8000:]}"]
    for log in sorted((data_dir / "logs").glob("*.log")):
        parts.append(f"--- {log.name} ---\n{tail(log, lines)}")
    return "\n".join(parts)


def child_pids(data_dir: Path) -> set[int]:
    """The pids in the children's pid files."""
    pids = set()
    for pid_file in (data_dir / "run").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(pid_file.read_text().strip()))
    return pids


def kill(proc: subprocess.Popen[bytes] | None, data_dir: Path) -> None:
    """SIGKILL the process and every child still alive, whatever the test did."""
    pids = child_pids(data_dir)
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(10)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
