"""Loading the seed catalogue into a running allocation service, with a short admin token."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from stallctl.errors import StartupError
from stallctl.tokens import dev_staff_key, staff_token
from stallkit.auth import Role
from stallkit.clock import Clock
from stallkit.keys import SigningKey

SEED_TIMEOUT_SECONDS = 60.0
CATALOGUE_PATH = "/v1/admin/catalogue"


def service_clock(environ: Mapping[str, str]) -> Clock:
    """The clock the services build from these variables (so minted tokens fit their time)."""
    anchor = environ.get("STALL_CLOCK_ANCHOR")
    return Clock(
        offset_seconds=float(environ.get("STALL_CLOCK_OFFSET_SECONDS", "0") or 0),
        speed=float(environ.get("STALL_CLOCK_SPEED", "1") or 1),
        anchor=float(anchor) if anchor else None,
    )


def admin_token(now: datetime, ttl_seconds: int = 3600, key: SigningKey | None = None) -> str:
    """A short-lived admin token for the runtime's own calls (seeding); dev staff key by default."""
    key = key or dev_staff_key()
    return staff_token(key, role=Role.ADMIN, sub="stallctl", now=now, ttl_seconds=ttl_seconds)


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
