"""What ``stallctl up`` prints once the embedded system is ready."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from stallctl.ports import SERVICES

if TYPE_CHECKING:
    from stallctl.runtime import EmbeddedSystem


def stallctl_command() -> str:
    """How to run this ``stallctl`` from the working folder, without uv on the PATH."""
    script = Path(sys.executable).parent / "stallctl"
    if not script.exists():
        return "stallctl"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def banner(system: EmbeddedSystem) -> str:
    """The ready banner: timings, each service's docs, infrastructure, how to get a token."""
    ready = f"{system.ready_seconds:.1f}s" if system.ready_seconds is not None else "?"
    names = [name for svc in SERVICES for name in system.replica_names(svc)]
    width = max(11, *(len(name) for name in names))
    lines = [
        "",
        f"双限便民市场系统已就绪 / Markets system ready in {ready}",
        "  (" + ", ".join(f"{k} {v:.1f}s" for k, v in system.timings.items()) + ")",
        "",
        f"  {'service':<{width}} {'API docs':<32} AsyncAPI",
    ]
    for name in names:
        url = system.url(name)
        lines.append(f"  {name:<{width}} {url + '/docs':<32} {url}/asyncapi")
    if system.replicas > 1:
        lines.append(f"  ({system.replicas} replicas of each service, in the same consumer groups)")
    stallctl = stallctl_command()
    lines += [
        "",
        f"  stats 统计       {system.url('reporting')}/v1/stats",
        f"  Kafka            {system.kafka_bootstrap}"
        + ("" if "broker" in system.own_infra else "  (external)"),
        f"  Redis            {system.redis_url}"
        + ("" if "redis" in system.own_infra else "  (external)"),
        f"  data 数据        {system.data_dir}  (logs: {system.log_dir})",
        "",
        f"  token 令牌: {stallctl} token --role admin --sub admin",
        f"              {stallctl} token --role patrol --sub p001 --district xiangzhou",
        "",
        "  按 Ctrl-C 停止 / press Ctrl-C to stop",
    ]
    return "\n".join(lines)
