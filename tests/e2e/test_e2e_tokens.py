"""With zero configuration, the embedded system takes `stallctl token` and vendor logins, each
only where its audience says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest

from stallctl.runtime import SERVICES

pytestmark = pytest.mark.e2e


def stallctl_token(*args: str) -> str:
    """``stallctl token`` as an operator runs it beside `stallctl up` (no key settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALL_", "ALLOCATION_"))}
    result = subprocess.run(
        [sys.executable, "-m", "stallctl.cli", "token", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_stallctl_tokens_and_vendor_logins_are_accepted_where_they_are_meant(
    runner_factory: Any,
) -> None:
    runner = runner_factory()
    runner.start()
    runner.wait_ready()
    runner.wait_banner()  # seeding with the runtime's own admin token worked
    admin = stallctl_token("--role", "admin", "--sub", "ops")
    patrol_here = stallctl_token("--role", "patrol", "--sub", "p001", "--district", "xiangzhou",
                                 "--audience", "inspection")  # fmt: skip
    with httpx.Client(timeout=10.0) as client:
        for svc in SERVICES:
            me = client.get(runner.url(svc) + "/v1/auth/whoami", headers=_bearer(admin))
            assert me.status_code == 200, (svc, me.text)
            assert me.json() == {"sub": "ops", "role": "admin", "district": None, "service": svc}
            narrow = client.get(runner.url(svc) + "/v1/auth/whoami", headers=_bearer(patrol_here))
            expected = 200 if svc == "inspection" else 401
            assert narrow.status_code == expected, (svc, narrow.text)

        allocation = runner.url("allocation")
        vendor = {
            "name": "陈小梅",
            "phone": "13900002222",
            "password": "password123",
            "categories": ["cooked_food"],
            "health_certificate_expires": "2099-01-01",
        }
        assert client.post(allocation + "/v1/vendors", json=vendor).status_code == 201
        login = client.post(
            allocation + "/v1/auth/token",
            data={"username": vendor["phone"], "password": vendor["password"]},
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        assert client.get(allocation + "/v1/vendors/me", headers=_bearer(token)).status_code == 200
        windows = client.get(runner.url("windows") + "/v1/auth/whoami", headers=_bearer(token))
        assert (windows.status_code, windows.json()["code"]) == (401, "wrong_audience")
        keys = client.get(allocation + "/.well-known/jwks.json").json()["keys"]
        assert [key["kid"][:11] for key in keys] == ["allocation-"]

    runner.signal(signal.SIGINT)
    assert runner.wait_exit(60) == 0, runner.diagnostics()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
