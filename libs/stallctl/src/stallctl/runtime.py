"""The embedded system: a Tansu broker, redis-server and the four services on one machine.

Used by ``stallctl up`` (``make run``) and by the end-to-end tests. Everything it starts lives
under one data folder::

    data/run/<name>.pid     pid of each child, and stallctl.lock (one runner per folder)
    data/logs/<name>.log    what each child printed
    data/redis/             redis-server's append-only file
    data/evidence/          inspection's evidence photos (content-addressed)

This module is the supervisor. Ports live in :mod:`stallctl.ports`, the children's bookkeeping
in :mod:`stallctl.children`, seeding in :mod:`stallctl.seeding` and the ready banner in
:mod:`stallctl.banner`; their public names are importable from here too.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import httpx

from stallctl import procs
from stallctl.banner import banner
from stallctl.children import RUN_HEADER, Child, pid_alive, signals_ignored, stop_all, tail
from stallctl.errors import StartupError
from stallctl.ports import (
    INFRA,
    SERVICES,
    Ports,
    cmdline,
    port_owner,
    replica_name,
    service_of,
)
from stallctl.seeding import admin_token, seed_catalogue, service_clock
from stallctl.tokens import StaffSettings
from stallkit.topics import ensure_topics_when_reachable

__all__ = [
    "INFRA",
    "SERVICES",
    "EmbeddedSystem",
    "Ports",
    "StartupError",
    "admin_token",
    "default_data_dir",
    "pid_alive",
    "port_owner",
    "repo_root",
    "seed_catalogue",
    "service_clock",
    "tail",
]

READY_TIMEOUT_SECONDS = 90.0
#: What a live child of ours has in its command line (guards against a reused pid).
_CMDLINE_MARKERS: dict[str, str] = {
    "broker": "tansu",
    "redis": "redis-server",
    **{svc: f"{svc}.app:app" for svc in SERVICES},
}
#: Signals on which ``serve()`` stops everything. SIGINT is set explicitly too: a background
#: job of a non-interactive shell starts with SIGINT ignored, and Python keeps it ignored.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


class _Interrupted(BaseException):
    """Raised by ``serve``'s signal handler, so that it unwinds as on Ctrl-C."""


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
    #: uvicorn processes per service, all in the service's consumer groups: replica 1 is
    #: ``<service>`` on its port, replica k is ``<service>-k`` on a free port chosen here.
    replicas: int = 1

    children: dict[str, Child] = field(default_factory=dict, init=False)
    ready_seconds: float | None = field(default=None, init=False)
    #: Seconds from start() until each step finished (infra, topics, each service ready).
    timings: dict[str, float] = field(default_factory=dict, init=False)
    seed_result: dict[str, Any] | None = field(default=None, init=False)
    _lock: IO[str] | None = field(default=None, init=False)
    _started: float = field(default=0.0, init=False)
    #: Ports of the extra replicas (``allocation-2``, ...), chosen when the system is made.
    replica_ports: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas must be at least 1")
        taken = set(vars(self.ports).values())
        for svc in SERVICES:
            for k in range(2, self.replicas + 1):
                port = procs.free_port()
                while port in taken:
                    port = procs.free_port()
                taken.add(port)
                self.replica_ports[replica_name(svc, k)] = port
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
        env.pop("STALL_STAFF_SIGNING_KEY", None)  # stallctl's own: no service holds it
        defaults = {
            "STALL_MODE": "dev",
            "STALL_CLOCK_ANCHOR": repr(time.time()),
            "PYTHONUNBUFFERED": "1",
            # inspection's evidence photos live beside the rest of the embedded data
            "INSPECTION_EVIDENCE_DIR": str(self.data_dir / "evidence"),
            # allocation's texts (registration codes) go to a local outbox in development
            "ALLOCATION_SMS_OUTBOX": str(self.data_dir / "sms-outbox.jsonl"),
            # the vendor page (allocation's origin) reads the vendor's warnings from inspection
            "ALLOCATION_INSPECTION_URL": self.url("inspection"),
            "STALL_CORS_ORIGINS": ",".join(
                f"http://{host}:{self.port_of(name)}"
                for name in self.replica_names("allocation")
                for host in ("127.0.0.1", "localhost")
            ),
        }
        if env.get("STALL_MODE") == "prod":  # production runs on real time (no anchor)
            del defaults["STALL_CLOCK_ANCHOR"]
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

    @property
    def service_names(self) -> list[str]:
        """The child names of every service replica, service by service."""
        return [name for svc in SERVICES for name in self.replica_names(svc)]

    def replica_names(self, service: str) -> list[str]:
        """The child names of a service's replicas: ``allocation``, ``allocation-2``, ..."""
        return [replica_name(service, k) for k in range(1, self.replicas + 1)]

    def port_of(self, name: str) -> int:
        """The port of a child: broker, redis, a service (its first replica) or a replica."""
        return self.replica_ports.get(name) or self.ports.of(name)

    def url(self, service: str) -> str:
        """Base URL of a service (its first replica), or of a replica by name."""
        return f"http://127.0.0.1:{self.port_of(service)}"

    def urls(self, service: str) -> list[str]:
        """Base URLs of every replica of a service, the first replica's first."""
        return [self.url(name) for name in self.replica_names(service)]

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
            marker = _CMDLINE_MARKERS.get(service_of(name))
            if pid_alive(pid) and marker is not None and marker in cmdline(pid):
                self.echo(f"清理上次残留的进程 / stopping leftover {name} (pid {pid})")
                procs.kill_stale(pid_file)
            pid_file.unlink(missing_ok=True)

    def _check_ports(self) -> None:
        wanted = [*self.own_infra, *self.service_names]
        for name in wanted:
            port = self.port_of(name)
            if procs.port_open(port):
                owner = port_owner(port)
                by = f" by `{owner}`" if owner else ""
                raise StartupError(
                    f"port {port} (for {name}) is already in use{by}, and not by this runner's "
                    f"data folder {self.data_dir}. Stop that program, or choose other ports "
                    f"(stallctl up --base-port N, or --{name}-port N)."
                )

    def _spawn(self, name: str, args: list[str]) -> Child:
        log = self.log_file(name)
        with log.open("a") as f:
            f.write(
                f"\n{RUN_HEADER}{datetime.now().isoformat(timespec='seconds')} start {name} =====\n"
            )
        proc = procs.spawn(args, log_path=log, env=self.child_env, cwd=repo_root())
        pid_file = self.pid_file(name)
        pid_file.write_text(f"{proc.pid}\n")
        child = Child(name, proc, pid_file, log)
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
            for name in self.service_names:
                self._spawn(name, self._service_args(name))
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
        prefix = self.child_env.get("STALL_TOPIC_PREFIX", "")
        try:
            asyncio.run(
                ensure_topics_when_reachable(
                    self.kafka_bootstrap, prefix, timeout=timeout, retry_seconds=0.5
                )
            )
        except Exception as exc:
            if "broker" in self.children:
                raise self._failure("broker", f"refused to create topics ({exc!r})") from exc
            raise StartupError(
                f"could not create topics on {self.kafka_bootstrap}: {exc!r}"
            ) from exc

    def _service_args(self, name: str) -> list[str]:
        """The command line of a service's replica (``allocation``, ``allocation-2``, ...)."""
        return [
            sys.executable, "-m", "uvicorn", self.apps[service_of(name)],
            "--host", "127.0.0.1",
            "--port", str(self.port_of(name)),
            "--no-access-log",
        ]  # fmt: skip

    def _wait_ready(self) -> None:
        pending = set(self.service_names)
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
        try:
            key = StaffSettings.from_environ(self.environ).signing_key()
        except ValueError as exc:  # a ValidationError of the staff settings
            raise StartupError(f"cannot sign the seeding token: {exc}") from exc
        token = admin_token(clock.now(), key=key)
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
        return banner(self)

    def serve(self) -> int:
        """Start, print the banner, run until SIGINT (Ctrl-C), SIGTERM or SIGHUP, stop.

        Returns the exit code: 0 when stopped by a signal, 1 when the system could not start.
        The handlers are installed whatever the signals' dispositions were, so that an ignored
        SIGINT (a background job) stops the system too; they are put back afterwards.
        """

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise _Interrupted(signum)

        previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
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
        with signals_ignored():
            services = [c for n, c in self.children.items() if service_of(n) in SERVICES]
            infra = [self.children[s] for s in INFRA if s in self.children]
            for group in (services, infra):
                stop_all(group)
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
