"""The committed npm assets are exactly what the manifest pins: each file's sha256 matches, and
no file sits in a vendor folder without being listed (a hand edit or a stale file fails here;
``make assets`` re-fetches)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stallctl.assets import MANIFEST, AssetFile, load_manifest, sha256_of

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = load_manifest(MANIFEST)
FILES = [f for p in PACKAGES for f in p.files]


@pytest.mark.parametrize("asset", FILES, ids=[f.to.split("/static/")[-1] for f in FILES])
def test_a_vendored_file_is_the_pinned_one(asset: AssetFile) -> None:
    path = REPO_ROOT / asset.to
    assert path.is_file(), f"{asset.to} is missing: run `make assets`"
    assert asset.sha256 is not None, f"{asset.to} has no sha256 in the manifest"
    assert sha256_of(path) == asset.sha256, f"{asset.to} differs from the manifest: make assets"


def test_every_package_is_pinned_by_version_and_integrity() -> None:
    for package in PACKAGES:
        assert f"/{package.name}-{package.version}.tgz" in package.tarball, package
        assert package.integrity.startswith("sha512-"), package
        assert package.files, package


def test_vendor_folders_hold_only_listed_files() -> None:
    listed = {(REPO_ROOT / f.to).resolve() for f in FILES}
    patterns = [
        "services/*/src/*/static/vendor",
        "libs/*/src/*/static/vendor",
        "libs/*/src/*/vendor",
    ]
    vendor_dirs = [d for p in patterns for d in REPO_ROOT.glob(p) if d.is_dir()]
    assert vendor_dirs, "no vendor folder found"
    present = {p.resolve() for d in vendor_dirs for p in d.rglob("*") if p.is_file()}
    assert present - listed == set(), "files in a vendor folder that the manifest does not list"
