"""``stallctl``: the operators' command line (start the embedded system, tokens, seed, topics)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from stallctl import procs
from stallctl.dlq import app as dlq_app
from stallkit.auth import Role, mint_token
from stallkit.clock import Clock
from stallkit.settings import CommonSettings

app = typer.Typer(
    name="stallctl",
    help="双限便民市场 operators' tool / Double-limit markets: run, tokens, seed, topics.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(dlq_app, name="dlq")


class RoleChoice(StrEnum):
    """Roles a token can carry."""

    ADMIN = "admin"
    PATROL = "patrol"
    DISTRICT = "district"
    VENDOR = "vendor"


def _settings() -> CommonSettings:
    try:
        return CommonSettings()
    except ValidationError as exc:
        typer.echo(f"invalid settings in the environment: {exc}", err=True)
        raise typer.Exit(2) from exc


def _clock(settings: CommonSettings) -> Clock:
    return Clock(
        offset_seconds=settings.clock_offset_seconds,
        speed=settings.clock_speed,
        anchor=settings.clock_anchor,
    )


PortOption = Annotated[int | None, typer.Option(min=1, max=65535, show_default=False)]


@app.command()
def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="STALL_DATA_DIR",
            help="Data folder (pids, logs, redis AOF). Default: <repo>/data.",
            show_default=False,
        ),
    ] = None,
    no_seed: Annotated[
        bool, typer.Option("--no-seed", help="Do not load the seed catalogue.")
    ] = False,
    seed_file: Annotated[
        Path | None,
        typer.Option(
            "--seed-file", help="Catalogue to seed instead of deploy/seed/catalogue.json."
        ),
    ] = None,
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port",
            min=1,
            max=65530,
            help="Use six ports from N: broker, redis, allocation, windows, inspection, reporting.",
            show_default=False,
        ),
    ] = None,
    broker_port: PortOption = None,
    redis_port: PortOption = None,
    allocation_port: PortOption = None,
    windows_port: PortOption = None,
    inspection_port: PortOption = None,
    reporting_port: PortOption = None,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every service's /readyz.")
    ] = 90.0,
    app_override: Annotated[
        list[str] | None,
        typer.Option(
            "--app",
            hidden=True,
            help="Run another ASGI app for a service: NAME=module:attribute (development).",
        ),
    ] = None,
) -> None:
    """Start the embedded system (broker, redis-server, four services) until Ctrl-C."""
    from stallctl.runtime import SERVICES, EmbeddedSystem, Ports, default_data_dir

    ports = (Ports.from_base(base_port) if base_port else Ports()).with_overrides(
        broker=broker_port,
        redis=redis_port,
        allocation=allocation_port,
        windows=windows_port,
        inspection=inspection_port,
        reporting=reporting_port,
    )
    apps = {svc: f"{svc}.app:app" for svc in SERVICES}
    for item in app_override or []:
        name, _, target = item.partition("=")
        if name not in apps or ":" not in target:
            raise typer.BadParameter(
                f"expected NAME=module:attribute, got {item!r}", param_hint="--app"
            )
        apps[name] = target
    system = EmbeddedSystem(
        apps=apps,
        data_dir=data_dir or default_data_dir(),
        ports=ports,
        seed=not no_seed,
        ready_timeout=ready_timeout,
        seed_file=seed_file,
        echo=lambda line: print(line, flush=True),
    )
    print(
        f"正在启动 / starting the embedded system in {system.data_dir} "
        f"(ports: {', '.join(f'{k} {v}' for k, v in vars(ports).items())})",
        flush=True,
    )
    _die_with_uv_wrapper()
    raise typer.Exit(system.serve())


def _die_with_uv_wrapper() -> None:
    """Under ``uv run`` (``make run``), stop cleanly if that wrapper is killed with -9."""
    parent = os.getppid()
    try:
        name = Path(f"/proc/{parent}/comm").read_text().strip()
    except OSError:
        return
    if name == "uv":
        procs.request_death_signal()  # SIGTERM us when uv dies: serve() then stops everything
        if os.getppid() != parent:  # uv died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)


@app.command()
def token(
    role: Annotated[RoleChoice, typer.Option(help="Role the token carries.")],
    sub: Annotated[str, typer.Option(help="Subject: user or vendor id.")],
    district: Annotated[
        str | None, typer.Option(help="District of a staff member, e.g. xiangzhou.")
    ] = None,
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 28800,
) -> None:
    """Print a bearer token signed with STALL_JWT_SECRET (or the development secret)."""
    settings = _settings()
    if role in (RoleChoice.PATROL, RoleChoice.DISTRICT) and not district:
        typer.echo(f"note: a {role.value} token usually carries --district", err=True)
    typer.echo(
        mint_token(
            settings.jwt_secret,
            sub=sub,
            role=Role(role.value),
            now=_clock(settings).now(),
            ttl_seconds=ttl,
            district=district,
        )
    )


@app.command()
def seed(
    url: Annotated[str, typer.Option(help="Base URL of the allocation service.")] = (
        "http://127.0.0.1:8001"
    ),
    file: Annotated[
        Path | None,
        typer.Option(help="Catalogue JSON. Default: deploy/seed/catalogue.json."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to keep retrying.")] = 30.0,
) -> None:
    """Load the seed catalogue into a running allocation service."""
    from stallctl.runtime import StartupError, admin_token, seed_catalogue

    settings = _settings()
    token_ = admin_token(settings.jwt_secret, _clock(settings).now())
    try:
        answer = seed_catalogue(url, token_, path=file, timeout=timeout)
    except (StartupError, OSError, ValidationError) as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"已导入 / seeded: {answer}")


@app.command()
def topics() -> None:
    """Create the contract topics on KAFKA_BOOTSTRAP_SERVERS (existing ones are kept)."""
    from stallkit.messaging import ensure_topics

    settings = _settings()
    try:
        created = asyncio.run(
            ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
        )
    except Exception as exc:
        typer.echo(f"✗ {settings.kafka_bootstrap_servers}: {exc!r}", err=True)
        raise typer.Exit(1) from exc
    if created:
        typer.echo("created: " + ", ".join(created))
    else:
        typer.echo(f"all topics already exist on {settings.kafka_bootstrap_servers}")


def main() -> None:
    """Entry point of the ``stallctl`` script."""
    # Make Chinese output safe on terminals with a non-UTF-8 locale.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    app()


if __name__ == "__main__":
    main()
