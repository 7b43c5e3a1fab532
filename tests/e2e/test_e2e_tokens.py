"""With zero configuration, the embedded system takes `stallctl token` and vendor logins, each
only where its audience says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from stallctl.runtime import SERVICES
from stalltest.allocation import register_vendor_sync

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
    runner_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = runner_factory()
    sms_outbox = tmp_path / "sms-outbox.jsonl"  # where the registration code is texted
    monkeypatch.setenv("ALLOCATION_SMS_OUTBOX", str(sms_outbox))
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
        with httpx.Client(base_url=allocation, timeout=10.0) as vendor_client:
            token = register_vendor_sync(
                vendor_client, sms_outbox, name="陈小梅", phone="13900002222",
                password="password123", categories=["cooked_food"],
                health_certificate_expires="2099-01-01",
            ).token  # fmt: skip
        assert client.get(allocation + "/v1/vendors/me", headers=_bearer(token)).status_code == 200
        windows = client.get(runner.url("windows") + "/v1/auth/whoami", headers=_bearer(token))
        assert (windows.status_code, windows.json()["code"]) == (401, "wrong_audience")
        keys = client.get(allocation + "/.well-known/jwks.json").json()["keys"]
        assert [key["kid"][:11] for key in keys] == ["allocation-"]

    runner.signal(signal.SIGINT)
    assert runner.wait_exit(60) == 0, runner.diagnostics()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
