"""Fault injection for end-to-end tests: the embedded system (``stallctl up``) as a subprocess
whose children can be killed, frozen and started again, a steady load of requests retried as a
phone retries them (same ``Idempotency-Key``), and the topics read from their start.

A killed child is started again as it was: its command line (redis-server rewrites its own:
the runtime's is used), environment and working folder are read from ``/proc`` before the kill,
and the new process gets the old one's pid file and log. It is a child of the test process then
(``stallctl up`` only reports the death).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from stallctl import procs
from stallctl.children import RUN_HEADER, pid_alive, tail
from stallctl.ports import INFRA, SERVICES
from stallkit.topics import read_to_end

#: Settings of the caller's environment that would point the system elsewhere.
SCRUBBED = (
    "KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "STALL_TOPIC_PREFIX", "STALL_REDIS_PREFIX",
    "STALL_DATA_DIR", "STALL_JWT_SECRET", "STALL_TOKEN_JWKS", "STALL_TOKEN_JWKS_FILE",
    "STALL_STAFF_SIGNING_KEY", "ALLOCATION_TOKEN_SIGNING_KEY", "STALL_MODE",
    "STALL_CLOCK_SPEED", "STALL_CLOCK_ANCHOR", "STALL_CLOCK_OFFSET_SECONDS",
)  # fmt: skip
#: Pause between two attempts of a request that found its service unreachable or failing.
RETRY_SECONDS = 0.25


@dataclass(frozen=True)
class Launch:
    """How a child process was started: enough to start it again as it was."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path

    @classmethod
    def of(cls, name: str, pid: int, args: list[str] | None = None) -> Launch:
        """Read the command line (unless given), environment and working folder of ``pid``
        from /proc."""
        proc = Path(f"/proc/{pid}")
        if args is None:
            args = [os.fsdecode(a) for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        env: dict[str, str] = {}
        for entry in (proc / "environ").read_bytes().split(b"\0"):
            key, sep, value = os.fsdecode(entry).partition("=")
            if sep:
                env[key] = value
        return cls(name, args, env, Path(os.readlink(proc / "cwd")))


class EmbeddedRun:
    """``stallctl up`` on free ports with its own data folder; its children killed at will."""

    def __init__(self, data_dir: Path, repo_root: Path, environ: Mapping[str, str]):
        self.data_dir = data_dir
        self.repo_root = repo_root
        self.environ = {k: v for k, v in environ.items() if k not in SCRUBBED}
        self.environ["PYTHONUNBUFFERED"] = "1"
        ports: list[int] = []
        while len(ports) < len(INFRA) + len(SERVICES):
            port = procs.free_port()
            if port not in ports:
                ports.append(port)
        self.ports = dict(zip((*INFRA, *SERVICES), ports, strict=True))
        self.output = data_dir.parent / f"{data_dir.name}-up.log"
        self.proc: subprocess.Popen[bytes] | None = None
        #: Children started again by this object (not by ``stallctl up``), by name.
        self.relaunched: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def bootstrap(self) -> str:
        """The broker's address."""
        return f"127.0.0.1:{self.ports['broker']}"

    @property
    def redis_url(self) -> str:
        """redis-server's URL."""
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    def url(self, service: str) -> str:
        """Base URL of a service."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, timeout: float = 240.0) -> None:
        """Launch ``stallctl up`` and wait until it is ready and seeded."""
        args = [sys.executable, "-m", "stallctl.cli", "up", "--data-dir", str(self.data_dir)]
        for name, port in self.ports.items():
            args += [f"--{name}-port", str(port)]
        args += ["--ready-timeout", "180"]
        earlier = len(self.text())
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=self.environ, cwd=self.repo_root
            )
        deadline = time.monotonic() + timeout
        while "ready in" not in self.text()[earlier:]:
            if self.proc.poll() is not None:
                raise AssertionError(f"stallctl up exited with {self.proc.returncode}\n{self}")
            if time.monotonic() > deadline:
                raise AssertionError(f"stallctl up was not ready after {timeout}s\n{self}")
            time.sleep(0.25)

    def text(self) -> str:
        """What ``stallctl up`` printed so far."""
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def __str__(self) -> str:
        """The runner's output and the tail of every child's log (for assertion messages)."""
        parts = [f"--- stallctl up ---\n{self.text()[-4000:]}"]
        for name in (*INFRA, *SERVICES):
            log = self.log(name)
            if log.exists():
                parts.append(f"--- {name}.log ---\n{tail(log, 12)}")
        return "\n".join(parts)

    def log(self, name: str) -> Path:
        """The log file of child ``name``."""
        return self.data_dir / "logs" / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        """The pid file of child ``name``."""
        return self.data_dir / "run" / f"{name}.pid"

    def pid(self, name: str) -> int:
        """The pid of child ``name`` now."""
        return int(self.pid_file(name).read_text().strip())

    def pids(self) -> dict[str, int]:
        """Every child's pid now."""
        return {name: self.pid(name) for name in (*INFRA, *SERVICES)}

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to child ``name`` (SIGSTOP freezes it, SIGCONT lets it go on)."""
        os.kill(self.pid(name), sig)

    def kill(self, name: str, timeout: float = 15.0) -> Launch:
        """SIGKILL child ``name``; return how to start it again. Returns once it is gone."""
        pid = self.pid(name)
        # redis-server rewrites its command line (its process title): take the runtime's.
        redis = procs.redis_args(self.ports["redis"], self.data_dir / "redis", persistent=True)
        launch = Launch.of(name, pid, redis if name == "redis" else None)
        os.kill(pid, signal.SIGKILL)
        mine = self.relaunched.pop(name, None)
        if mine is not None:
            mine.wait(timeout)
        deadline = time.monotonic() + timeout
        while pid_alive(pid):  # a child of stallctl up: dead, or a zombie it reaps soon
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} (pid {pid}) still alive {timeout}s after SIGKILL")
            time.sleep(0.05)
        return launch

    def relaunch(self, launch: Launch) -> int:
        """Start a killed child again as it was (same pid file and log); return its pid.

        redis-server is waited for until it accepts connections; a service's readiness is
        :meth:`wait_ready`'s to wait for.
        """
        log = self.log(launch.name)
        with log.open("a") as f:
            f.write(f"\n{RUN_HEADER}{datetime.now().isoformat(timespec='seconds')} "
                    f"relaunched {launch.name} by the fault test =====\n")  # fmt: skip
        proc = procs.spawn(launch.args, log_path=log, env=launch.env, cwd=launch.cwd)
        self.relaunched[launch.name] = proc
        self.pid_file(launch.name).write_text(f"{proc.pid}\n")
        if launch.name in INFRA:
            procs.wait_for_port(self.ports[launch.name], timeout=60.0, proc=proc)
        return proc.pid

    async def wait_ready(self, services: Iterable[str] = SERVICES, timeout: float = 120.0) -> float:
        """Poll each service's /readyz until all answer 200; return the seconds it took."""
        started = time.monotonic()
        pending = set(services)
        last: dict[str, str] = {}
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                for svc in sorted(pending):
                    try:
                        answer = await client.get(self.url(svc) + "/readyz")
                    except httpx.TransportError as exc:
                        last[svc] = repr(exc)
                        continue
                    if answer.status_code == 200:
                        pending.discard(svc)
                    else:
                        last[svc] = f"HTTP {answer.status_code} {answer.text[:400]}"
                if not pending:
                    break
                if time.monotonic() - started > timeout:
                    raise AssertionError(
                        f"not ready after {timeout}s: {sorted(pending)}; last /readyz: {last}\n"
                        f"{self}"
                    )
                await asyncio.sleep(0.25)
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop everything: relaunched services, then ``stallctl up``, then relaunched infra."""
        with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
            self.signal("broker", signal.SIGCONT)  # in case a test left it frozen
        for name in SERVICES:
            if name in self.relaunched:
                procs.stop(self.relaunched.pop(name))
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for proc in self.relaunched.values():
            procs.stop(proc)
        self.relaunched.clear()


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A POST that carries an ``Idempotency-Key``: retried with it until answered."""

    key: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """The definitive answer to a request (not a transport error, not a 5xx)."""

    request: Request
    status: int
    body: Any
    headers: dict[str, str]
    #: ``time.monotonic()`` when the answer arrived.
    at: float
    attempts: int

    @property
    def ok(self) -> bool:
        """200 (a replay) or 201."""
        return self.status in (200, 201)


async def post_until_answered(
    client: httpx.AsyncClient,
    request: Request,
    timeout: float = 180.0,
    on_failure: Callable[[], None] | None = None,
) -> Answer:
    """POST ``request`` until it gets an answer that is not a transport error or a 5xx
    (``on_failure`` is called after each attempt that did not)."""
    deadline = time.monotonic() + timeout
    attempts = 0
    last = ""
    while time.monotonic() < deadline:
        attempts += 1
        headers = {**request.headers, "Idempotency-Key": request.key}
        try:
            response = await client.post(request.url, headers=headers, json=request.body)
        except httpx.TransportError as exc:
            last = repr(exc)
        else:
            if response.status_code < 500:
                try:
                    body = response.json()
                except ValueError:
                    body = response.text
                answer = Answer(request, response.status_code, body, dict(response.headers),
                                time.monotonic(), attempts)  # fmt: skip
                return answer
            last = f"HTTP {response.status_code} {response.text[:300]}"
        if on_failure is not None:
            on_failure()
        await asyncio.sleep(RETRY_SECONDS)
    raise AssertionError(f"{request.url} {request.key}: no answer in {timeout}s (last: {last})")


@dataclass
class Load:
    """``workers`` clients sending the requests one after the other, each every ``pace``
    seconds, until the requests run out or :meth:`stop` is called; every request is retried
    until answered."""

    client: httpx.AsyncClient
    requests: Iterator[Request]
    workers: int = 2
    pace: float = 0.25
    answers: list[Answer] = field(default_factory=list)
    #: Attempts that met a transport error or a 5xx (then retried).
    failed_attempts: int = 0
    _stopping: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> Load:
        """Start the workers."""
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        return self

    async def _work(self) -> None:
        while not self._stopping:
            request = next(self.requests, None)
            if request is None:
                return
            answer = await post_until_answered(self.client, request, on_failure=self._failed)
            self.answers.append(answer)
            await asyncio.sleep(self.pace)

    def _failed(self) -> None:
        self.failed_attempts += 1

    @property
    def acked(self) -> list[Answer]:
        """The answers that acknowledged their request."""
        return [a for a in self.answers if a.ok]

    async def until(self, check: Callable[[Load], bool], what: str, timeout: float = 90.0) -> None:
        """Wait until ``check(self)`` holds; fail with ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not check(self):
            if all(t.done() for t in self._tasks):
                for task in self._tasks:
                    task.result()  # a worker's failure
                raise AssertionError(f"the load ran out before {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s")
            await asyncio.sleep(0.05)

    async def acks(self, count: int, timeout: float = 90.0) -> None:
        """Wait until ``count`` requests in all were acknowledged."""
        await self.until(lambda load: len(load.acked) >= count, f"{count} acks", timeout)

    async def stop(self) -> list[Answer]:
        """Send no new request, wait for those under way to be answered; the answers."""
        self._stopping = True
        for task in self._tasks:
            await task
        return self.answers


# --- topics -----------------------------------------------------------------------------------


async def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from its start up to its end now (no group, nothing committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            partitions = sorted(consumer.partitions_for_topic(topic) or ())
            if not partitions:
                await consumer.force_metadata_update()
                partitions = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            read = await read_to_end(consumer, tps)
            records = [r for tp in tps for r in read[tp]]
    finally:
        await consumer.stop()
    return records


async def eventually(
    check: Callable[[], Awaitable[Any]],
    what: str,
    timeout: float = 60.0,
    *,
    done: Callable[[Any], bool] = bool,
    pause: float = 0.5,
) -> Any:
    """Poll ``check`` until ``done`` holds for its result (default: truthy); return the result.

    Fails with ``what`` and the last result.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {result!r})")
        await asyncio.sleep(pause)


def header(record: Any, name: str) -> str:
    """A Kafka record's header ``name`` as text ('' when absent)."""
    for key, value in record.headers or ():
        if key == name:
            return bytes(value or b"").decode(errors="replace")
    return ""


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The offset after the last record now of every non-empty partition of ``topics``.

    Read from the records (see :func:`stallkit.topics.read_to_end`: the embedded broker's own
    end offsets fall short).
    """
    ends: dict[tuple[str, int], int] = {}
    for topic in topics:
        for record in await read_topic(bootstrap, topic):
            key = (topic, record.partition)
            ends[key] = max(ends.get(key, 0), record.offset + 1)
    return ends


async def committed_offsets(
    bootstrap: str, group: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """A consumer group's committed offsets of ``partitions`` (0 where none is committed).

    Read with a consumer of the group that subscribes to nothing: it never joins the group.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        offsets = {}
        for topic, partition in partitions:
            at = await consumer.committed(TopicPartition(topic, partition))
            offsets[(topic, partition)] = int(at or 0)
    finally:
        await consumer.stop()
    return offsets


async def behind(
    bootstrap: str, groups: Mapping[str, Iterable[str]], ends: Mapping[tuple[str, int], int]
) -> dict[str, dict[str, int]]:
    """Where each group (with the topics it reads) has not committed up to ``ends`` yet:
    ``{"group topic/partition": {"committed": n, "end": m}}``, empty when all caught up."""
    late: dict[str, dict[str, int]] = {}
    for group, topics in groups.items():
        wanted = set(topics)
        mine = [tp for tp in ends if tp[0] in wanted]
        offsets = await committed_offsets(bootstrap, group, mine)
        for (topic, partition), at in offsets.items():
            end = ends[(topic, partition)]
            if at < end:
                late[f"{group} {topic}/{partition}"] = {"committed": at, "end": end}
    return late


async def catch_up(
    bootstrap: str, groups: Mapping[str, Iterable[str]], timeout: float = 90.0
) -> None:
    """Wait until every group committed up to the end (as of now) of the topics it reads."""
    topics = {t for ts in groups.values() for t in ts}
    ends = await end_offsets(bootstrap, topics)

    async def late() -> dict[str, dict[str, int]]:
        return await behind(bootstrap, groups, ends)

    await eventually(late, "consumer groups catch up", timeout, done=lambda late: not late)
