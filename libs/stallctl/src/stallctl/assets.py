"""Vendored npm assets: fetch each pinned tarball, verify its integrity, extract the listed files.

The manifest (``deploy/assets/assets.lock.json``) pins every package by version, tarball URL and
the registry's ``integrity`` (Subresource Integrity form, ``sha512-<base64>``), and lists which
tarball members go where in the repository. The extracted files are committed, so that running,
testing and building images need no network; the manifest also keeps each file's sha256, which a
unit test recomputes, so that a hand edit or a stale file fails.

``python -m stallctl.assets`` (``make assets``) re-fetches everything and rewrites the sha256s;
``--check`` only compares the committed files with the manifest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[4]
MANIFEST = REPO_ROOT / "deploy" / "assets" / "assets.lock.json"
#: Integrity algorithms accepted, strongest first (npm publishes sha512).
ALGORITHMS = ("sha512", "sha384", "sha256")
MAX_TARBALL_BYTES = 64 * 1024 * 1024


class AssetError(Exception):
    """The manifest, a tarball or a vendored file is not what it should be."""


@dataclass(frozen=True)
class AssetFile:
    """One file taken from a tarball: its member name, where it goes, its expected sha256."""

    member: str
    to: str
    sha256: str | None


@dataclass(frozen=True)
class Package:
    """One pinned npm package and the files taken from it."""

    name: str
    version: str
    tarball: str
    integrity: str
    files: tuple[AssetFile, ...]


def _relative(path: str) -> str:
    """``path`` if it is a plain relative path (no ``..``, not absolute), else an error."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise AssetError(f"not a relative path inside the repository: {path!r}")
    return path


def load_manifest(path: Path = MANIFEST) -> list[Package]:
    """The packages of the manifest at ``path``."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        packages = [
            Package(
                name=p["name"],
                version=p["version"],
                tarball=p["tarball"],
                integrity=p["integrity"],
                files=tuple(
                    AssetFile(f["from"], _relative(f["to"]), f.get("sha256")) for f in p["files"]
                ),
            )
            for p in data["packages"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssetError(f"{path}: not a readable asset manifest ({exc!r})") from exc
    for package in packages:
        if not package.tarball.startswith("https://"):
            raise AssetError(f"{package.name}: the tarball URL must be https")
    return packages


def integrity_of(data: bytes, algorithm: str = "sha512") -> str:
    """The Subresource Integrity string of ``data`` (as npm's ``dist.integrity``)."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def verify_integrity(data: bytes, integrity: str) -> None:
    """Raise unless ``data`` matches ``integrity`` (one or more space-separated SRI hashes).

    Of several hashes, the strongest algorithm given is the one checked, as SRI says.
    """
    given: dict[str, list[str]] = {}
    for token in integrity.split():
        algorithm, _, value = token.partition("-")
        if algorithm in ALGORITHMS and value:
            given.setdefault(algorithm, []).append(token)
    strongest = next((a for a in ALGORITHMS if a in given), None)
    if strongest is None:
        raise AssetError(f"no usable hash in integrity {integrity!r}")
    actual = integrity_of(data, strongest)
    if actual not in given[strongest]:
        raise AssetError(f"integrity mismatch: expected {integrity}, the tarball is {actual}")


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract(tarball: bytes, package: Package, root: Path) -> dict[str, str]:
    """Write ``package``'s listed members of ``tarball`` under ``root``; return their sha256s.

    Only the listed members are read, as regular files; nothing else in the tarball is written.
    """
    written: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for asset in package.files:
            try:
                member = archive.getmember(asset.member)
            except KeyError:
                raise AssetError(
                    f"{package.name}@{package.version} has no {asset.member}"
                ) from None
            source = archive.extractfile(member) if member.isreg() else None
            if source is None:
                raise AssetError(f"{asset.member} is not a regular file")
            content = source.read()
            target = root / asset.to
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written[asset.to] = hashlib.sha256(content).hexdigest()
    return written


def download(url: str, client: httpx.Client) -> bytes:
    """The bytes at ``url`` (at most :data:`MAX_TARBALL_BYTES`)."""
    chunks: list[bytes] = []
    size = 0
    with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise AssetError(f"GET {url} answered HTTP {response.status_code}")
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_TARBALL_BYTES:
                raise AssetError(f"{url} is larger than {MAX_TARBALL_BYTES} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


def check(packages: Sequence[Package], root: Path = REPO_ROOT) -> list[str]:
    """What is wrong with the committed files: missing, or not the manifest's sha256."""
    problems = []
    for package in packages:
        for asset in package.files:
            path = root / asset.to
            if not path.is_file():
                problems.append(f"{asset.to}: missing (run `make assets`)")
            elif asset.sha256 is None:
                problems.append(f"{asset.to}: no sha256 in the manifest (run `make assets`)")
            elif sha256_of(path) != asset.sha256:
                problems.append(
                    f"{asset.to}: not {package.name}@{package.version}'s {asset.member} "
                    "(edited by hand, or stale: run `make assets`)"
                )
    return problems


def fetch_all(
    manifest: Path = MANIFEST, root: Path = REPO_ROOT, client: httpx.Client | None = None
) -> list[str]:
    """Fetch, verify and extract every package; record the files' sha256s in the manifest."""
    packages = load_manifest(manifest)
    hashes: dict[str, str] = {}
    lines = []
    with client or httpx.Client(timeout=60.0, follow_redirects=True) as http:
        for package in packages:
            tarball = download(package.tarball, http)
            try:
                verify_integrity(tarball, package.integrity)
            except AssetError as exc:
                raise AssetError(f"{package.name}@{package.version}: {exc}") from None
            hashes.update(extract(tarball, package, root))
            lines.append(f"{package.name}@{package.version}: {len(package.files)} files")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    for entry in data["packages"]:
        for file in entry["files"]:
            file["sha256"] = hashes[file["to"]]
    manifest.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stallctl.assets [--check] [--manifest PATH] [--root DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m stallctl.assets",
        description="Fetch pinned npm assets, verify their integrity, extract the listed files.",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="where the manifest's paths start"
    )
    parser.add_argument(
        "--check", action="store_true", help="only compare the committed files with the manifest"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        if args.check:
            problems = check(load_manifest(args.manifest), root)
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        for line in fetch_all(args.manifest, root):
            print(line)
    except (AssetError, httpx.HTTPError) as exc:
        print(f"assets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
