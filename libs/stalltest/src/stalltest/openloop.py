"""Open-loop load: requests sent at a constant rate whatever the answers, latency from the
moment each request was due.

A closed-loop tool (wrk, a pool of clients each waiting for its answer) sends less when the
server slows down, so a stall hides in its own figures (coordinated omission). Here request
``i`` is due at ``start + i / rate``; it goes out on an idle keep-alive connection or a new one
(up to ``max_connections``; beyond that it waits for one, and the wait counts), and its latency
runs from when it was due to the last byte of the answer. The generator is plain asyncio
streams speaking HTTP/1.1, cheap enough per request to keep a few hundred requests a second on
one core; ``lag_ms`` says how far behind schedule the generator itself fell (if that is large,
the figures measure the client, not the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: One request: its headers (besides Host, Content-Type and Content-Length) and JSON body.
Request = tuple[Mapping[str, str], bytes]


@dataclass
class OpenLoopResult:
    """What one open-loop run measured."""

    name: str
    offered_rate: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lag_ms: float = 0.0
    #: The most connections open at once.
    connections: int = 0

    @property
    def sent(self) -> int:
        """Requests that got an answer or failed (status 0)."""
        return sum(self.statuses.values())

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the latencies, nearest rank; NaN if none."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]

    @property
    def p50_ms(self) -> float:
        """Median latency."""
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency."""
        return self.percentile(99)

    @property
    def failed(self) -> int:
        """Answers of 5xx, and requests with no answer (status 0)."""
        return sum(n for status, n in self.statuses.items() if status == 0 or status >= 500)

    def line(self) -> str:
        """One printable line."""
        ok = sum(n for s, n in self.statuses.items() if 200 <= s < 300)
        rejected = sum(n for s, n in self.statuses.items() if 400 <= s < 500)
        return (
            f"{self.name:<34} {self.offered_rate:6.0f} req/s offered   p50 {self.p50_ms:6.1f} ms"
            f"   p99 {self.p99_ms:6.1f} ms   max {self.percentile(100):6.1f} ms   2xx {ok}"
            f"  4xx {rejected}  failed {self.failed}  (generator lag {self.lag_ms:.1f} ms, "
            f"{self.connections} connections)"
        )


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send ``request``, read the whole answer; its status and whether to keep the line."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers.get("connection") != "close"

    def close(self) -> None:
        self.writer.close()


async def open_loop(
    name: str,
    url: str,
    requests: Callable[[int], Request],
    *,
    rate: float,
    seconds: float,
    max_connections: int = 256,
    timeout: float = 30.0,
) -> OpenLoopResult:
    """POST ``requests(i)`` to ``url`` for i = 0, 1, ... at ``rate`` per second for ``seconds``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    result = OpenLoopResult(name, rate, seconds)
    idle: list[_Connection] = []
    freed = asyncio.Condition()
    open_count = 0
    loop = asyncio.get_running_loop()

    def encode(index: int) -> bytes:
        headers, body = requests(index)
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}",
                 "Content-Type: application/json", f"Content-Length: {len(body)}"]  # fmt: skip
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def take() -> tuple[_Connection, bool]:
        """An idle connection (and True), or a new one (and False)."""
        nonlocal open_count
        async with freed:
            while not idle and open_count >= max_connections:
                await freed.wait()
            if idle:
                return idle.pop(), True
            open_count += 1
            result.connections = max(result.connections, open_count)
        try:
            return _Connection(*await asyncio.open_connection(host, port)), False
        except BaseException:
            async with freed:
                open_count -= 1
                freed.notify()
            raise

    async def give_back(conn: _Connection, keep: bool) -> None:
        nonlocal open_count
        async with freed:
            if keep:
                idle.append(conn)
            else:
                conn.close()
                open_count -= 1
            freed.notify()

    async def send(request: bytes) -> int:
        """The answer's status. A kept-alive connection the server closed while it was idle
        fails at once: the request goes again on a new one, as HTTP clients do (each request
        carries its own Idempotency-Key, so a second try is a replay, never a second write)."""
        while True:
            conn, reused = await take()
            keep = False
            try:
                status, keep = await conn.exchange(request)
                return status
            except (OSError, asyncio.IncompleteReadError):
                if not reused:
                    raise
            finally:
                await give_back(conn, keep)

    async def one(index: int, due: float) -> None:
        status = 0
        try:
            async with asyncio.timeout(timeout):
                status = await send(encode(index))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0
        result.statuses[status] += 1
        if status:
            result.latencies_ms.append((loop.time() - due) * 1000)

    total = int(rate * seconds)
    start = loop.time() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for index in range(total):
        due = start + index / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            result.lag_ms = max(result.lag_ms, -wait * 1000)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    for conn in idle:
        with contextlib.suppress(Exception):
            conn.close()
    return result
