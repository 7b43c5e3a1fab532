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

from contracts.catalogue import District
from stallctl import procs
from stallctl.dlq import app as dlq_app
from stallctl.draw import app as draw_app
from stallctl.feed import Language
from stallctl.feed import run as feed_run
from stallctl.keytool import KeyKind, merged_jwks, new_key_pair
from stallctl.tokens import StaffSettings, staff_token
from stallkit.auth import AUDIENCES, Role, mint_token
from stallkit.keys import Issuer, SigningKey, canonical_seed
from stallkit.settings import RETIRED_JWT_SECRET_MESSAGE, CommonSettings, Mode

app = typer.Typer(
    name="stallctl",
    help="双限便民市场 operators' tool / Double-limit markets: run, tokens, seed, topics.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(draw_app, name="draw")


class RoleChoice(StrEnum):
    """Roles a token can carry: staff roles, and vendor (signed with allocation's key)."""

    ADMIN = "admin"
    PATROL = "patrol"
    DISTRICT = "district"
    VENDOR = "vendor"


class AudienceChoice(StrEnum):
    """Services a token can be for."""

    ALLOCATION = "allocation"
    WINDOWS = "windows"
    INSPECTION = "inspection"
    REPORTING = "reporting"


def _settings() -> CommonSettings:
    try:
        return CommonSettings()
    except ValidationError as exc:
        typer.echo(f"invalid settings in the environment: {exc}", err=True)
        raise typer.Exit(2) from exc


def _staff_settings() -> StaffSettings:
    if os.environ.get("STALL_JWT_SECRET"):
        typer.echo(f"note: {RETIRED_JWT_SECRET_MESSAGE}: ignoring it", err=True)
    try:
        return StaffSettings()
    except ValidationError as exc:
        typer.echo(f"invalid settings in the environment: {exc}", err=True)
        raise typer.Exit(2) from exc


PortOption = Annotated[int | None, typer.Option(min=1, max=65535, show_default=False)]
ReplicasOption = Annotated[
    int,
    typer.Option(
        "--replicas",
        min=1,
        max=8,
        help="Processes of each service, in the same consumer groups (replica 1 on the "
        "service's port, the others on free ports, listed in the banner).",
    ),
]


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
    replicas: ReplicasOption = 1,
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
        replicas=replicas,
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
    sub: Annotated[str, typer.Option(help="Subject: the staff member's id.")],
    district: Annotated[
        str | None, typer.Option(help="District of a staff member, e.g. xiangzhou.")
    ] = None,
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 28800,
    audience: Annotated[
        list[AudienceChoice] | None,
        typer.Option(
            help="A service the token is for (repeatable). Default: all four.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print a staff token signed with STALL_STAFF_SIGNING_KEY (or the development key).

    ``--role vendor`` signs with allocation's vendor-token key instead
    (ALLOCATION_TOKEN_SIGNING_KEY, or allocation's development key), as allocation's login does.
    """
    if not sub.strip():
        raise typer.BadParameter("must not be empty", param_hint="--sub")
    staff = _staff_settings()
    if role is RoleChoice.VENDOR:
        typer.echo(
            _vendor_token(staff, sub, ttl, [a.value for a in audience] if audience else None)
        )
        return
    if role in (RoleChoice.PATROL, RoleChoice.DISTRICT) and not district:
        typer.echo(f"note: a {role.value} token usually carries --district", err=True)
    typer.echo(
        staff_token(
            staff.signing_key(),
            role=Role(role.value),
            sub=sub,
            now=staff.clock().now(),
            ttl_seconds=ttl,
            district=district,
            audience=[a.value for a in audience] if audience else AUDIENCES,
        )
    )


def _vendor_token(staff: StaffSettings, sub: str, ttl: int, audience: list[str] | None) -> str:
    """A vendor token signed with allocation's key, as its login would issue."""
    from allocation.config import DEV_VENDOR_TOKEN_SEED_B64, VENDOR_TOKEN_AUDIENCE

    seed = os.environ.get("ALLOCATION_TOKEN_SIGNING_KEY", "")
    if not seed:
        if staff.mode is Mode.PROD:
            typer.echo(
                "vendor tokens are signed with allocation's key: set "
                "ALLOCATION_TOKEN_SIGNING_KEY (vendors normally log in: POST /v1/auth/token)",
                err=True,
            )
            raise typer.Exit(2)
        seed = DEV_VENDOR_TOKEN_SEED_B64
    try:
        key = SigningKey.from_seed(
            Issuer.ALLOCATION, canonical_seed(seed, "ALLOCATION_TOKEN_SIGNING_KEY")
        )
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    return mint_token(
        key,
        sub=sub,
        role=Role.VENDOR,
        now=staff.clock().now(),
        ttl_seconds=ttl,
        audience=audience or VENDOR_TOKEN_AUDIENCE,
    )


@app.command()
def jwks(
    merge: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help=(
                "Add the keys of another JWKS: a file, an http(s) URL (allocation's "
                "/.well-known/jwks.json) or the JSON itself. Repeatable."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the staff key's public JWKS (with --with: merged, the value of STALL_TOKEN_JWKS)."""
    staff = _staff_settings()
    try:
        typer.echo(merged_jwks(staff.signing_key(), merge or []))
    except ValueError as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def keygen(
    kind: Annotated[
        KeyKind,
        typer.Argument(
            help="vendor-tokens (allocation), staff-tokens (stallctl) or stall-codes.",
            show_default=False,
        ),
    ],
) -> None:
    """Print a new Ed25519 key pair: line 1 the private setting, line 2 its public part."""
    private, public, note = new_key_pair(kind)
    typer.echo(private)
    typer.echo(public)
    typer.echo(note, err=True)


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

    staff = _staff_settings()
    token_ = admin_token(staff.clock().now(), key=staff.signing_key())
    try:
        answer = seed_catalogue(url, token_, path=file, timeout=timeout)
    except (StartupError, OSError, ValidationError) as exc:
        typer.echo(f"✗ {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"已导入 / seeded: {answer}")


@app.command()
def feed(
    district: Annotated[
        str, typer.Option(help="District to follow (xiangzhou, doumen, ...), or all.")
    ],
    lang: Annotated[Language, typer.Option(help="Summary language.")] = Language.BOTH,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the topics' start, not now.")
    ] = False,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only these event types (booking.created, ...); repeatable."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each envelope as JSON.")] = False,
) -> None:
    """Follow a district's events live from Kafka, one readable zh/en line each (Ctrl-C stops)."""
    known = {d.value for d in District} | {"all"}
    if district not in known:
        typer.echo(f"unknown district {district!r}: one of {', '.join(sorted(known))}", err=True)
        raise typer.Exit(2)
    feed_run(
        _settings(),
        district,
        sys.stdout,
        language=lang,
        from_beginning=from_beginning,
        types=set(types) if types else None,
        as_json=as_json,
    )


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


@app.command("k8s-topics")
def k8s_topics(
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 if the file is out of date."),
    ] = False,
) -> None:
    """Write deploy/k8s/topics.yaml (Strimzi KafkaTopics) from contracts/topics.py."""
    from stallctl.k8s import TOPICS_FILE, render_topics, write_topics
    from stallctl.runtime import repo_root

    root = repo_root()
    path = root / TOPICS_FILE
    if check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != render_topics():
            typer.echo(f"✗ {TOPICS_FILE} is out of date: run `stallctl k8s-topics`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{TOPICS_FILE} is up to date")
        return
    typer.echo(f"wrote {write_topics(root).relative_to(root)}")


@app.command()
def demo(
    day: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="The simulated day, YYYY-MM-DD. Default: the coming Saturday (all markets open).",
            show_default=False,
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=1.0, help="Service seconds per real second (the clock's speed).")
    ] = 200.0,
    vendors: Annotated[int, typer.Option(min=1, help="Synthetic vendors.")] = 2000,
    markets: Annotated[
        list[str] | None,
        typer.Option(
            "--markets",
            help="Only these markets or districts (XZ-06, doumen; repeatable or comma-separated;"
            " the others are not seeded). Default: all 35.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the day's plan.")] = 1,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Data folder. Default: a new temporary one (a used one keeps its data).",
            show_default=False,
        ),
    ] = None,
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port",
            min=1,
            max=65530,
            help="Use six ports from N (as `up`). Default: free ports.",
            show_default=False,
        ),
    ] = None,
    broker_port: PortOption = None,
    redis_port: PortOption = None,
    allocation_port: PortOption = None,
    windows_port: PortOption = None,
    inspection_port: PortOption = None,
    reporting_port: PortOption = None,
    replicas: ReplicasOption = 1,
    exit_after: Annotated[
        bool,
        typer.Option(
            "--exit",
            help="Stop once the report is printed (exit 1 if it disagrees or a rule did not hold).",
        ),
    ] = False,
    webhook: Annotated[
        str | None,
        typer.Option(
            help="Register this URL as a webhook of the followed vendor's market (district feed).",
            show_default=False,
        ),
    ] = None,
    summary_json: Annotated[
        Path | None,
        typer.Option(
            "--summary-json",
            help="Write what the demo did and reporting's figures to this JSON file.",
            show_default=False,
        ),
    ] = None,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every service's /readyz.")
    ] = 90.0,
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="HTTP requests in flight at most.")
    ] = 24,
) -> None:
    """Simulate a market day end to end through the public APIs, print the district report."""
    from stallctl.demo_run import DemoOptions, demo_ports, parse_day, run_demo

    try:
        options = DemoOptions(
            day=parse_day(day),
            speed=speed,
            vendors=vendors,
            markets=[m for item in markets or [] for m in item.split(",") if m.strip()],
            seed=seed,
            data_dir=data_dir,
            ports=demo_ports(
                base_port,
                broker=broker_port,
                redis=redis_port,
                allocation=allocation_port,
                windows=windows_port,
                inspection=inspection_port,
                reporting=reporting_port,
            ),
            exit=exit_after,
            webhook=webhook,
            summary=summary_json,
            ready_timeout=ready_timeout,
            concurrency=concurrency,
            replicas=replicas,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--date") from exc
    _die_with_uv_wrapper()
    raise typer.Exit(run_demo(options))


def main() -> None:
    """Entry point of the ``stallctl`` script."""
    # Make Chinese output safe on terminals with a non-UTF-8 locale.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    app()


if __name__ == "__main__":
    main()
