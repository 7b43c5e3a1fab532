"""What the embedded system runs and on which TCP ports; who holds a port already."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

SERVICES: tuple[str, ...] = ("allocation", "windows", "inspection", "reporting")
INFRA: tuple[str, ...] = ("broker", "redis")


def replica_name(service: str, replica: int) -> str:
    """The child name of a service's ``replica`` (1-based): ``allocation``, ``allocation-2``, ..."""
    return service if replica == 1 else f"{service}-{replica}"


def service_of(name: str) -> str:
    """The service (or infrastructure) of a child name: ``allocation-2`` → ``allocation``."""
    base, dash, number = name.rpartition("-")
    return base if dash and number.isdigit() and base in SERVICES else name


@dataclass(frozen=True)
class Ports:
    """TCP ports of the broker, redis-server and the four services."""

    broker: int = 19092
    redis: int = 16379
    allocation: int = 8001
    windows: int = 8002
    inspection: int = 8003
    reporting: int = 8004

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """Six consecutive ports from ``base``: broker, redis, then the four services."""
        return cls(base, base + 1, base + 2, base + 3, base + 4, base + 5)

    def of(self, name: str) -> int:
        """Port of ``name`` (broker, redis or a service)."""
        return int(getattr(self, name))

    def with_overrides(self, **overrides: int | None) -> Ports:
        """A copy with the given ports replaced (``None`` keeps the current one)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def cmdline(pid: int) -> str:
    """The command line of ``pid`` as one string (empty if it is gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def port_owner(port: int) -> str | None:
    """Best effort: ``pid command`` of the process listening on ``port`` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc_dir / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return f"{proc_dir.name} {cmdline(int(proc_dir.name)).strip()[:120]}"
    return None
