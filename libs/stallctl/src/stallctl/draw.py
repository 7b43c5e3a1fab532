"""``stallctl draw``: check a published lottery draw by re-running it (``contracts.lottery``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError

from contracts.lottery import DrawPublication

app = typer.Typer(
    name="draw",
    help="摇号 / Lottery draws of oversubscribed windows: verify a published draw.",
    no_args_is_help=True,
)


@app.command()
def verify(
    market: Annotated[str | None, typer.Argument(help="Market id, e.g. XZ-01.")] = None,
    date: Annotated[
        str | None, typer.Argument(help="Local date of the window, YYYY-MM-DD.")
    ] = None,
    window: Annotated[str | None, typer.Argument(help="Window id, e.g. evening.")] = None,
    url: Annotated[
        str, typer.Option(help="Allocation's base URL, where draws are published.")
    ] = "http://127.0.0.1:8001",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Instead: a published draw (commitment, inputs with the revealed seed, result) "
            "as JSON; - reads standard input.",
            allow_dash=True,
        ),
    ] = None,
) -> None:
    """Re-run a published draw from its inputs; exit 0 if it matches, 1 if not, 2 if unreadable.

    ``stallctl draw verify XZ-01 2026-12-10 evening`` fetches it from allocation's
    ``GET /v1/draws/{market}/{date}/{window}``; ``--file`` reads a saved copy.
    """
    if file is not None:
        text = _read(file)
    elif market and date and window:
        text = _fetch(f"{url.rstrip('/')}/v1/draws/{market}/{date}/{window}")
    else:
        typer.echo("name the draw (MARKET DATE WINDOW) or give --file", err=True)
        raise typer.Exit(2)
    try:
        publication = DrawPublication.model_validate_json(text)
    except ValidationError as exc:
        typer.echo(f"not a published draw: {exc}", err=True)
        raise typer.Exit(2) from exc
    inputs = publication.inputs
    what = f"{inputs.market_id} {inputs.date} {inputs.window_id}"
    verdict = publication.verify()
    if verdict.ok:
        typer.echo(
            f"✓ {what}: the seed matches its commitment and a re-run gives the published result "
            f"({len(publication.result.awards)} stalls to {len(inputs.applicants)} applicants; "
            f"result {publication.result.digest()[:16]})"
        )
        return
    typer.echo(f"✗ {what}: the published draw does not verify", err=True)
    for reason in verdict.reasons:
        typer.echo(f"  - {reason}", err=True)
    raise typer.Exit(1)


def _read(file: Path) -> str:
    try:
        return sys.stdin.read() if str(file) == "-" else file.read_text("utf-8")
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc


def _fetch(url: str) -> str:
    """The published draw; a draw not run yet has no inputs to verify (exit 2)."""
    try:
        response = httpx.get(url, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach {url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code != 200:
        typer.echo(f"{url}: {response.status_code} {response.text[:300]}", err=True)
        raise typer.Exit(2)
    body = response.json()
    if body.get("inputs") is None or body.get("result") is None:
        typer.echo(
            f"the draw has not run yet (state {body.get('state')}, at {body.get('draw_at')}); "
            f"its seed's commitment is {body.get('commitment')}",
            err=True,
        )
        raise typer.Exit(2)
    return json.dumps(
        {"commitment": body["commitment"], "inputs": body["inputs"], "result": body["result"]}
    )
