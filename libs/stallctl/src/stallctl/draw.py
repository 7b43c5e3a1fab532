"""``stallctl draw``: check a published lottery draw by re-running it (``contracts.lottery``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            help="A published draw (commitment, inputs with the revealed seed, result) as JSON; "
            "- reads standard input.",
            allow_dash=True,
        ),
    ],
) -> None:
    """Re-run a published draw from its inputs; exit 0 if it matches, 1 if not, 2 if unreadable."""
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text("utf-8")
        publication = DrawPublication.model_validate_json(text)
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
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
