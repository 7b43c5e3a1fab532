"""The open-loop load generator keeps its rate whatever the server does, and counts a stall.

A small HTTP/1.1 server on a real socket answers every request at once, except the one it is
told to hold: a closed-loop client would send nothing more on that connection and report one
slow request; the open-loop run keeps sending on schedule and the held request's time shows.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from stalltest.openloop import OpenLoopResult, Request, open_loop

pytestmark = pytest.mark.unit


class _Server:
    def __init__(self, hold_index: int | None = None, hold_seconds: float = 0.0):
        self.hold_index = hold_index
        self.hold_seconds = hold_seconds
        self.seen: list[int] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = json.loads(await reader.readexactly(length))
                self.seen.append(body["i"])
                if body["i"] == self.hold_index:
                    await asyncio.sleep(self.hold_seconds)
                status = b"201 Created" if body["i"] % 10 else b"409 Conflict"
                answer = b'{"ok":true}'
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _requests(i: int) -> Request:
    return {"Idempotency-Key": f"k-{i}"}, json.dumps({"i": i}).encode()


async def _run(
    server: _Server, *, rate: float, seconds: float, max_connections: int = 256
) -> tuple[OpenLoopResult, _Server]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        result = await open_loop(
            "test",
            f"http://127.0.0.1:{port}/v1/x",
            _requests,
            rate=rate,
            seconds=seconds,
            max_connections=max_connections,
        )
    return result, server


async def test_every_request_is_sent_once_at_the_offered_rate_and_answers_are_counted() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result, server = await _run(_Server(), rate=200, seconds=1.0)
    took = loop.time() - started
    assert sorted(server.seen) == list(range(200))
    assert result.statuses == {201: 180, 409: 20}
    assert 0.9 < took < 3.0  # on schedule: neither all at once nor stretched out
    assert result.p99_ms < 1_000


async def test_a_held_request_delays_those_due_after_it_and_the_figures_show_it() -> None:
    # One connection: while request 10 is held 300 ms, the requests due meanwhile wait for it.
    result, server = await _run(
        _Server(hold_index=10, hold_seconds=0.3), rate=100, seconds=1.0, max_connections=1
    )
    assert sorted(server.seen) == list(range(100))
    assert server.connections == 1
    latencies = sorted(result.latencies_ms)
    # Request 10 took 300 ms and each of the ~30 due behind it waited its share: a closed-loop
    # client would report one slow request, the open loop reports the queue behind it too.
    assert sum(1 for ms in latencies if ms > 100) >= 15
    assert result.p99_ms >= 290


async def test_a_refused_connection_is_a_failure_not_a_hang() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    result = await open_loop(
        "down", f"http://127.0.0.1:{port}/", _requests, rate=50, seconds=0.2, timeout=2
    )
    assert result.statuses == {0: 10}
    assert result.failed == 10
    assert result.latencies_ms == []


async def test_a_kept_alive_connection_the_server_closed_is_retried_on_a_new_one() -> None:
    """A server that closes each connection after one answer, without saying so (as a
    keep-alive timeout does): every request still gets its answer, none is lost as failed."""

    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(one_answer_then_close, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        result = await open_loop(
            "closing", f"http://127.0.0.1:{port}/", _requests, rate=50, seconds=0.4
        )
    assert result.statuses == {201: 20}
