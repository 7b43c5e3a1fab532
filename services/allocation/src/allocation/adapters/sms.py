"""Text messages to vendors' phones: one small port, a file outbox for development and an HTTP
gateway for production."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from stallkit.clock import Clock


class SmsNotSent(Exception):
    """The message could not be handed over (the gateway refused it or did not answer)."""


class SmsGateway(Protocol):
    """Sends one text message to a mainland mobile number."""

    async def send(self, phone: str, text: str) -> None:
        """Hand ``text`` over for ``phone``; :class:`SmsNotSent` if that failed."""
        ...


class FileSmsOutbox:
    """Development and tests: each message is appended to a file as one JSON line
    ``{"time", "phone", "text"}`` (``ALLOCATION_SMS_OUTBOX``), where tests and the demo read it."""

    def __init__(self, path: Path, clock: Clock):
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()

    async def send(self, phone: str, text: str) -> None:
        """Append the message to the outbox file."""
        line = json.dumps(
            {"time": self.clock.now().isoformat(), "phone": phone, "text": text},
            ensure_ascii=False,
        )
        try:
            await run_in_threadpool(self._append, line)
        except OSError as exc:
            raise SmsNotSent(f"cannot write {self.path}: {exc}") from exc

    def _append(self, line: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")


class HttpSmsGateway:
    """Production: ``POST`` ``{"phone", "text"}`` as JSON to the operator's SMS gateway
    (``ALLOCATION_SMS_GATEWAY_URL``) with ``Authorization: Bearer <ALLOCATION_SMS_GATEWAY_TOKEN>``;
    any 2xx answer means handed over."""

    def __init__(self, url: str, token: str, *, timeout_seconds: float = 5.0):
        if not url.startswith(("https://", "http://")):
            raise ValueError("the SMS gateway URL must be http(s)")
        self.url = url
        self.token = token
        self.timeout_seconds = timeout_seconds

    async def send(self, phone: str, text: str) -> None:
        """POST the message to the gateway."""
        body = json.dumps({"phone": phone, "text": text}, ensure_ascii=False).encode()
        await run_in_threadpool(self._post, body)

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as answer:  # noqa: S310
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the answer's connection
            raise SmsNotSent(f"the SMS gateway answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise SmsNotSent(f"the SMS gateway did not answer: {exc}") from exc
        if not 200 <= status < 300:
            raise SmsNotSent(f"the SMS gateway answered {status}")
