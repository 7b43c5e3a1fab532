"""Load the seed catalogue (``deploy/seed/catalogue.json``) shipped with the repository."""

from __future__ import annotations

import os
from pathlib import Path

from contracts.catalogue import Catalogue

SEED_FILE_ENV = "STALL_SEED_FILE"
SEED_RELATIVE_PATH = Path("deploy") / "seed" / "catalogue.json"


def seed_path() -> Path:
    """The seed file: ``$STALL_SEED_FILE`` or the repository's ``deploy/seed/catalogue.json``."""
    override = os.environ.get(SEED_FILE_ENV)
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    for folder in here.parents:
        candidate = folder / SEED_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {SEED_RELATIVE_PATH} above {here.parent}; set {SEED_FILE_ENV} to the seed file"
    )


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and validate a catalogue file (default: :func:`seed_path`)."""
    return Catalogue.model_validate_json((path or seed_path()).read_bytes())
