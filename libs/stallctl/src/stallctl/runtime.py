"""The embedded system: a Tansu broker, redis-server and the four services on one machine.

Used by ``stallctl up`` (``make run``) and by the end-to-end tests. Everything it starts lives
under one data folder::

    data/run/<name>.pid     pid of each child, and stallctl.lock (one runner per folder)
    data/logs/<name>.log    what each child printed
    data/redis/             redis-server's append-only file
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import httpx

from stallctl import procs
from stallkit.auth import Role, mint_token
from stallkit.clock import Clock
from stallkit.settings import DEV_JWT_SECRET

SERVICES: tuple[str, ...] = ("allocation", "windows", "inspection", "reporting")
INFRA: tuple[str, ...] = ("broker", "redis")
#: The caller's variables with these prefixes reach the services (and win over our defaults).
PASS_THROUGH_PREFIXES = ("STALL_", "ALLOCATION_", "WINDOWS_", "INSPECTION_", "REPORTING_")
READY_TIMEOUT_SECONDS = 90.0
SEED_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
CATALOGUE_PATH = "/v1/admin/catalogue"
#: What a live child of ours has in its command line (guards against a reused pid).
_CMDLINE_MARKERS: dict[str, str] = {
    "broker": "tansu",
    "redis": "redis-server",
    **{svc: f"{svc}.app:app" for svc in SERVICES},
}


class StartupError(RuntimeError):
    """The embedded system could not start; the message says why and what to do."""


@dataclass(frozen=True)
class Ports:
    """TCP ports of the broker, redis-server and the four services."""

    broker: int = 19092
    redis: int = 16379
    allocation: int = 8001
    windows: int = 8002
    inspection: int = 8003
    reporting: int = 8004

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """Six consecutive ports from ``base``: broker, redis, then the four services."""
        return cls(base, base + 1, base + 2, base + 3, base + 4, base + 5)

    def of(self, name: str) -> int:
        """Port of ``name`` (broker, redis or a service)."""
        return int(getattr(self, name))

    def with_overrides(self, **overrides: int | None) -> Ports:
        """A copy with the given ports replaced (``None`` keeps the current one)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def repo_root() -> Path:
    """The repository (uv workspace) root: found from the working folder, else this file."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if (folder / "libs" / "stallkit").is_dir() and (folder / "pyproject.toml").is_file():
                return folder
    return Path.cwd()


def default_data_dir() -> Path:
    """``<repo>/data``."""
    return repo_root() / "data"


def service_clock(environ: Mapping[str, str]) -> Clock:
    """The clock the services build from these variables (so minted tokens fit their time)."""
    anchor = environ.get("STALL_CLOCK_ANCHOR")
    return Clock(
        offset_seconds=float(environ.get("STALL_CLOCK_OFFSET_SECONDS", "0") or 0),
        speed=float(environ.get("STALL_CLOCK_SPEED", "1") or 1),
        anchor=float(anchor) if anchor else None,
    )


def admin_token(secret: str, now: datetime, ttl_seconds: int = 3600) -> str:
    """A short-lived admin token for the runtime's own calls (seeding)."""
    return mint_token(secret, sub="stallctl", role=Role.ADMIN, now=now, ttl_seconds=ttl_seconds)


def seed_catalogue(
    base_url: str,
    token: str,
    *,
    path: Path | None = None,
    timeout: float = SEED_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """PUT the seed catalogue to a running allocation service; return its JSON answer.

    Retries while the service is unreachable or answers 5xx; any other failure raises
    :class:`StartupError` with the service's answer.
    """
    from contracts.seed import load_catalogue

    body = load_catalogue(path).model_dump_json().encode()
    url = base_url.rstrip("/") + CATALOGUE_PATH
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=30.0) as client:
        while True:
            try:
                response = client.put(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if response.status_code == 200:
                    answer = response.json()
                    return answer if isinstance(answer, dict) else {"answer": answer}
                last = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.status_code < 500:
                    raise StartupError(f"seeding failed: PUT {url} answered {last}")
            if time.monotonic() >= deadline:
                raise StartupError(f"seeding failed: PUT {url}: {last}")
            time.sleep(0.5)


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def port_owner(port: int) -> str | None:
    """Best effort: ``pid command`` of the process listening on ``port`` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc_dir / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return f"{proc_dir.name} {_cmdline(int(proc_dir.name)).strip()[:120]}"
    return None


RUN_HEADER = "===== "


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


class _Interrupted(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so that ``serve`` unwinds like on Ctrl-C."""


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    pid_file: Path
    log: Path
    reported_exit: bool = False


@dataclass
class EmbeddedSystem:
    """Broker, redis-server and the four services as children of this process.

    ``start()`` brings everything up (ready and seeded), ``stop()`` tears it down,
    ``serve()`` does both around waiting for Ctrl-C / SIGTERM. Usable as a context manager.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    ports: Ports = field(default_factory=Ports)
    seed: bool = True
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: ASGI app of each service, as uvicorn's ``module:attribute``.
    apps: Mapping[str, str] = field(default_factory=lambda: {s: f"{s}.app:app" for s in SERVICES})
    ready_timeout: float = READY_TIMEOUT_SECONDS
    seed_file: Path | None = None
    echo: Callable[[str], None] = print

    children: dict[str, _Child] = field(default_factory=dict, init=False)
    ready_seconds: float | None = field(default=None, init=False)
    #: Seconds from start() until each step finished (infra, topics, each service ready).
    timings: dict[str, float] = field(default_factory=dict, init=False)
    seed_result: dict[str, Any] | None = field(default=None, init=False)
    _lock: IO[str] | None = field(default=None, init=False)
    _started: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.run_dir = self.data_dir / "run"
        self.log_dir = self.data_dir / "logs"
        self.redis_dir = self.data_dir / "redis"
        self.external_kafka = self.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        self.external_redis = self.environ.get("REDIS_URL") or None
        self.kafka_bootstrap = self.external_kafka or f"127.0.0.1:{self.ports.broker}"
        self.redis_url = self.external_redis or f"redis://127.0.0.1:{self.ports.redis}/0"
        self.child_env = self._child_env()

    # ----------------------------------------------------------------------------- helpers

    def _child_env(self) -> dict[str, str]:
        env = dict(self.environ)
        defaults = {
            "STALL_MODE": "dev",
            "STALL_CLOCK_ANCHOR": repr(time.time()),
            "PYTHONUNBUFFERED": "1",
        }
        for key, value in defaults.items():
            env.setdefault(key, value)
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka_bootstrap
        env["REDIS_URL"] = self.redis_url
        return env

    @property
    def own_infra(self) -> tuple[str, ...]:
        """The infrastructure this runner starts itself (not given by the environment)."""
        return tuple(
            name
            for name, external in (("broker", self.external_kafka), ("redis", self.external_redis))
            if not external
        )

    def url(self, service: str) -> str:
        """Base URL of a service."""
        return f"http://127.0.0.1:{self.ports.of(service)}"

    def pid_file(self, name: str) -> Path:
        """Where the pid of child ``name`` is kept."""
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """Where the output of child ``name`` goes."""
        return self.log_dir / f"{name}.log"

    def pids(self) -> dict[str, int]:
        """Pids of the children this runner started."""
        return {name: child.proc.pid for name, child in self.children.items()}

    def _take_lock(self) -> None:
        lock_path = self.run_dir / "stallctl.lock"
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise StartupError(
                f"another `stallctl up` (pid {holder}) is running on {self.data_dir}; "
                "stop it first or use another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock; the file stays (no unlink race)
            self._lock = None

    def _kill_stale(self) -> None:
        for pid_file in sorted(self.run_dir.glob("*.pid")):
            name = pid_file.stem
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                pid_file.unlink(missing_ok=True)
                continue
            marker = _CMDLINE_MARKERS.get(name)
            if pid_alive(pid) and marker is not None and marker in _cmdline(pid):
                self.echo(f"清理上次残留的进程 / stopping leftover {name} (pid {pid})")
                procs.kill_stale(pid_file)
            pid_file.unlink(missing_ok=True)

    def _check_ports(self) -> None:
        wanted = [*self.own_infra, *SERVICES]
        for name in wanted:
            port = self.ports.of(name)
            if procs.port_open(port):
                owner = port_owner(port)
                by = f" by `{owner}`" if owner else ""
                raise StartupError(
                    f"port {port} (for {name}) is already in use{by}, and not by this runner's "
                    f"data folder {self.data_dir}. Stop that program, or choose other ports "
                    f"(stallctl up --base-port N, or --{name}-port N)."
                )

    def _spawn(self, name: str, args: list[str]) -> _Child:
        log = self.log_file(name)
        with log.open("a") as f:
            f.write(
                f"\n{RUN_HEADER}{datetime.now().isoformat(timespec='seconds')} start {name} =====\n"
            )
        proc = procs.spawn(args, log_path=log, env=self.child_env, cwd=repo_root())
        pid_file = self.pid_file(name)
        pid_file.write_text(f"{proc.pid}\n")
        child = _Child(name, proc, pid_file, log)
        self.children[name] = child
        return child

    def _failure(self, name: str, what: str) -> StartupError:
        log = self.log_file(name)
        return StartupError(f"{name} {what}. Last lines of {log}:\n{tail(log)}")

    # ----------------------------------------------------------------------------- start

    def start(self) -> float:
        """Start everything, wait until ready, seed; return the seconds it took to be ready.

        On failure (or Ctrl-C) everything already started is stopped again.
        """
        if threading.current_thread() is not threading.main_thread():
            # PR_SET_PDEATHSIG fires when the spawning *thread* ends, not the process.
            raise RuntimeError("EmbeddedSystem.start() must run in the main thread")
        started = self._started = time.monotonic()
        for folder in (self.run_dir, self.log_dir, self.redis_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._kill_stale()
            self._check_ports()
            self._start_infra()
            self.timings["infra"] = time.monotonic() - started
            self._ensure_topics()
            self.timings["topics"] = time.monotonic() - started
            for svc in SERVICES:
                self._spawn(svc, self._service_args(svc))
            self._wait_ready()
            self.ready_seconds = time.monotonic() - started
            if self.seed:
                self._seed()
        except BaseException:
            self.stop()
            raise
        return self.ready_seconds

    def _start_infra(self) -> None:
        if "broker" in self.own_infra:
            try:
                args = procs.broker_args(self.ports.broker)
            except Exception as exc:
                raise StartupError(f"the Tansu broker binary is missing: {exc}") from exc
            self._spawn("broker", args)
        if "redis" in self.own_infra:
            try:
                args = procs.redis_args(self.ports.redis, self.redis_dir, persistent=True)
            except RuntimeError as exc:
                raise StartupError(str(exc)) from exc
            self._spawn("redis", args)
        for name in self.own_infra:
            try:
                procs.wait_for_port(
                    self.ports.of(name), timeout=30.0, proc=self.children[name].proc
                )
            except (RuntimeError, TimeoutError) as exc:
                raise self._failure(name, f"did not start ({exc})") from exc

    def _ensure_topics(self, timeout: float = 30.0) -> None:
        from stallkit.messaging import ensure_topics

        prefix = self.child_env.get("STALL_TOPIC_PREFIX", "")
        deadline = time.monotonic() + timeout
        while True:
            try:
                asyncio.run(ensure_topics(self.kafka_bootstrap, prefix))
                return
            except Exception as exc:
                if time.monotonic() >= deadline:
                    if "broker" in self.children:
                        raise self._failure(
                            "broker", f"refused to create topics ({exc!r})"
                        ) from exc
                    raise StartupError(
                        f"could not create topics on {self.kafka_bootstrap}: {exc!r}"
                    ) from exc
                time.sleep(0.5)

    def _service_args(self, svc: str) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", self.apps[svc],
            "--host", "127.0.0.1",
            "--port", str(self.ports.of(svc)),
            "--no-access-log",
        ]  # fmt: skip

    def _wait_ready(self) -> None:
        pending = set(SERVICES)
        deadline = time.monotonic() + self.ready_timeout
        last: dict[str, str] = {}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for svc in sorted(pending):
                    child = self.children[svc]
                    if child.proc.poll() is not None:
                        child.reported_exit = True
                        raise self._failure(svc, f"exited with code {child.proc.returncode}")
                    try:
                        response = client.get(self.url(svc) + "/readyz")
                    except httpx.TransportError as exc:
                        last[svc] = repr(exc)
                        continue
                    if response.status_code == 200:
                        pending.discard(svc)
                        self.timings[svc] = time.monotonic() - self._started
                    else:
                        last[svc] = f"HTTP {response.status_code} {response.text[:300]}"
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    svc = sorted(pending)[0]
                    raise self._failure(
                        svc,
                        f"was not ready after {self.ready_timeout:.0f}s "
                        f"(not ready: {', '.join(sorted(pending))}; last /readyz: "
                        f"{last.get(svc, 'no answer')})",
                    )
                time.sleep(0.25)

    def _seed(self) -> None:
        clock = service_clock(self.child_env)
        secret = self.child_env.get("STALL_JWT_SECRET") or DEV_JWT_SECRET
        token = admin_token(secret, clock.now())
        started = time.monotonic()
        try:
            self.seed_result = seed_catalogue(self.url("allocation"), token, path=self.seed_file)
        except StartupError as exc:
            raise StartupError(f"{exc} (`stallctl up --no-seed` starts without seeding)") from exc
        self.echo(
            f"已导入种子目录 / seeded the catalogue in {time.monotonic() - started:.1f}s: "
            f"{self.seed_result}"
        )

    # ----------------------------------------------------------------------------- run

    def check_children(self) -> list[str]:
        """Report (once each) children that exited on their own; return their names."""
        gone = []
        for child in self.children.values():
            code = child.proc.poll()
            if code is not None and not child.reported_exit:
                child.reported_exit = True
                gone.append(child.name)
                self.echo(
                    f"⚠ {child.name} 已退出 / exited with code {code}; "
                    f"last lines of {child.log}:\n{tail(child.log, 20)}"
                )
        return gone

    def banner(self) -> str:
        """What ``stallctl up`` prints once the system is ready."""
        ready = f"{self.ready_seconds:.1f}s" if self.ready_seconds is not None else "?"
        lines = [
            "",
            f"双限便民市场系统已就绪 / Markets system ready in {ready}",
            "  (" + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()) + ")",
            "",
            f"  {'service':<11} {'API docs':<32} AsyncAPI",
        ]
        for svc in SERVICES:
            lines.append(f"  {svc:<11} {self.url(svc) + '/docs':<32} {self.url(svc)}/asyncapi")
        lines += [
            "",
            f"  stats 统计       {self.url('reporting')}/v1/stats",
            f"  Kafka            {self.kafka_bootstrap}"
            + ("" if "broker" in self.own_infra else "  (external)"),
            f"  Redis            {self.redis_url}"
            + ("" if "redis" in self.own_infra else "  (external)"),
            f"  data 数据        {self.data_dir}  (logs: {self.log_dir})",
            "",
            "  token 令牌: uv run stallctl token --role admin --sub admin",
            "              uv run stallctl token --role patrol --sub p001 --district xiangzhou",
            "",
            "  按 Ctrl-C 停止 / press Ctrl-C to stop",
        ]
        return "\n".join(lines)

    def serve(self) -> int:
        """Start, print the banner, run until Ctrl-C or SIGTERM, stop; return an exit code."""

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise _Interrupted(signum)

        previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            self.start()
            self.echo(self.banner())
            while True:
                self.check_children()
                time.sleep(0.5)
        except (KeyboardInterrupt, _Interrupted):
            self.echo("\n正在停止 / stopping…")
            return 0
        except StartupError as exc:
            self.echo(f"✗ 启动失败 / could not start: {exc}")
            return 1
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # ----------------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Stop the services, then the broker and redis-server; remove pid files. Idempotent."""
        if not self.children and self._lock is None:
            return
        with _signals_ignored():
            services = [self.children[s] for s in SERVICES if s in self.children]
            infra = [self.children[s] for s in INFRA if s in self.children]
            for group in (services, infra):
                _stop_all(group)
                for child in group:
                    child.pid_file.unlink(missing_ok=True)
                    self.children.pop(child.name, None)
            self._release_lock()

    def __enter__(self) -> EmbeddedSystem:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_all(children: list[_Child], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
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
def _signals_ignored() -> Iterator[None]:
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
