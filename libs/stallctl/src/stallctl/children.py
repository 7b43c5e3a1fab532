"""The embedded runtime's children: their logs, whether they live, stopping them together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_SECONDS = 10.0
#: Starts the header line written to a child's log at each start.
RUN_HEADER = "===== "


@dataclass
class Child:
    """A process the runner started, where its pid is kept and where it logs."""

    name: str
    proc: subprocess.Popen[bytes]
    pid_file: Path
    log: Path
    reported_exit: bool = False


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, this run's only (empty if there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    header = text.rfind("\n" + RUN_HEADER)
    if header >= 0:
        text = text[header + 1 :]
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_all(children: list[Child], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM all at once, wait up to ``timeout`` in total, SIGKILL the rest."""
    for child in children:
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            child.proc.wait(5)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM while tearing down, so that a second Ctrl-C cannot orphan."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
