"""The whole embedded system (`stallctl up`) as a subprocess, driven through public APIs.

An event published by allocation (one MarketChanged per seeded market) reaches reporting over
the real broker; Ctrl-C and `kill -9` of the runner leave no child behind; a second `up` on the
same data folder starts again.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

MARKET_CHANGED = "cn.gov.zhuhai.markets.catalogue.market.changed.v1"
SEEDED_MARKETS = 35


def wait_for_market_changed(runner: Any, headers: dict[str, str], timeout: float = 90.0) -> None:
    """Poll reporting's stats until it counted one MarketChanged per seeded market."""
    deadline = time.monotonic() + timeout
    last: Any = None
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(runner.url("reporting") + "/v1/stats", headers=headers)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                last = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.status_code == 200:
                    stats = response.json()
                    last = stats
                    if stats.get("events", {}).get(MARKET_CHANGED) == SEEDED_MARKETS:
                        return
            time.sleep(0.5)
    pytest.fail(
        f"reporting never counted {SEEDED_MARKETS} {MARKET_CHANGED} events; last: {last}\n"
        + runner.diagnostics()
    )


def test_event_crosses_the_broker_and_ctrl_c_leaves_no_orphan(
    runner_factory: Any, admin_headers: dict[str, str]
) -> None:
    """Seeded markets reach reporting; SIGINT stops the runner and every child it started."""
    runner = runner_factory()
    runner.start()
    ready = runner.wait_ready()
    runner.wait_banner()
    children = runner.child_pids()
    assert len(children) >= 6, f"expected broker, redis and 4 services, got {children}"
    print(f"all /readyz 200 after {ready:.1f}s")

    wait_for_market_changed(runner, admin_headers)

    runner.signal(signal.SIGINT)
    code = runner.wait_exit(60)
    assert code == 0, runner.diagnostics()
    alive = runner.wait_children_gone(children, timeout=5.0)
    assert not alive, f"children left after Ctrl-C: {alive}\n{runner.diagnostics()}"
    assert not list((runner.data_dir / "run").glob("*.pid")), "pid files left behind"


def test_kill_9_of_the_runner_leaves_no_orphan_and_up_starts_again(
    runner_factory: Any,
) -> None:
    """PDEATHSIG takes the children down with a killed runner; the next `up` starts cleanly."""
    first = runner_factory()
    first.start()
    first.wait_ready()
    first.wait_banner()
    children = first.child_pids()
    assert len(children) >= 6, children

    first.signal(signal.SIGKILL)
    first.wait_exit(10)
    alive = first.wait_children_gone(children, timeout=10.0)
    assert not alive, f"children left after kill -9 of the runner: {alive}"

    second = runner_factory(data_dir=first.data_dir, ports=first.ports)
    second.start()
    ready = second.wait_ready()
    second.wait_banner()
    print(f"second start: all /readyz 200 after {ready:.1f}s")
    second_children = second.child_pids()
    assert second_children.isdisjoint(children)

    second.signal(signal.SIGTERM)
    assert second.wait_exit(60) == 0, second.diagnostics()
    assert not second.wait_children_gone(second_children, timeout=5.0)
