"""The seed catalogue: Zhuhai's 35 markets and 1,489 stalls."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from contracts.catalogue import (
    MARKET_ID_PATTERN,
    STALL_ID_PATTERN,
    Catalogue,
    District,
    market_of_stall,
)
from contracts.seed import SEED_FILE_ENV, load_catalogue, seed_path

SEED_FILE = Path(__file__).resolve().parents[2] / "deploy" / "seed" / "catalogue.json"
GENERATOR = SEED_FILE.with_name("generate.py")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(SEED_FILE)


@functools.cache
def _generator() -> ModuleType:
    """deploy/seed/generate.py, loaded from its path (deploy/ is not a package)."""
    name = "deploy_seed_generate"
    spec = importlib.util.spec_from_file_location(name, GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the module runs.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.mark.unit
def test_default_path_is_the_repository_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SEED_FILE_ENV, raising=False)
    assert seed_path() == SEED_FILE
    assert load_catalogue() == load_catalogue(SEED_FILE)


@pytest.mark.unit
def test_env_var_overrides_the_seed_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    small = tmp_path / "small.json"
    small.write_text('{"markets": [], "stalls": []}', encoding="utf-8")
    monkeypatch.setenv(SEED_FILE_ENV, str(small))
    assert load_catalogue() == Catalogue(markets=[], stalls=[])


@pytest.mark.unit
def test_seed_has_35_markets_and_1489_stalls(catalogue: Catalogue) -> None:
    assert len(catalogue.markets) == 35
    assert len(catalogue.stalls) == 1489


@pytest.mark.unit
def test_every_market_is_complete(catalogue: Catalogue) -> None:
    stalled = {stall.market_id for stall in catalogue.stalls}
    for market in catalogue.markets:
        assert isinstance(market.district, District)
        assert market.windows, market.id
        assert market.id in stalled, f"{market.id} has no stalls"
        assert 21.8 <= market.location.lat <= 22.45, market.id
        assert 113.1 <= market.location.lon <= 113.9, market.id


@pytest.mark.unit
def test_every_district_is_known(catalogue: Catalogue) -> None:
    raw = {m.district.value for m in catalogue.markets}
    assert raw <= {d.value for d in District}


@pytest.mark.unit
def test_every_stall_sits_in_a_zone_of_its_market(catalogue: Catalogue) -> None:
    zones = {m.id: set(m.zones) for m in catalogue.markets}
    for stall in catalogue.stalls:
        assert stall.category in zones[stall.market_id], stall.id
        assert market_of_stall(stall.id) == stall.market_id


@pytest.mark.unit
def test_ids_follow_the_patterns(catalogue: Catalogue) -> None:
    assert all(re.match(MARKET_ID_PATTERN, m.id) for m in catalogue.markets)
    assert all(re.match(STALL_ID_PATTERN, s.id) for s in catalogue.stalls)


@pytest.mark.unit
def test_stall_zone_letter_matches_category(catalogue: Catalogue) -> None:
    letters = _generator().ZONE_LETTER
    for stall in catalogue.stalls:
        assert stall.id[6] == letters[stall.category], stall.id


@pytest.mark.unit
def test_seed_file_is_what_the_generator_writes() -> None:
    generator = _generator()
    assert SEED_FILE.read_text(encoding="utf-8") == generator.render(generator.build_catalogue()), (
        "deploy/seed/catalogue.json is stale: run `uv run python deploy/seed/generate.py`"
    )
