"""``python -m stallctl.assets``: a tarball is used only if its integrity matches; only the
listed members are written; ``--check`` finds edited or missing files."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest

from stallctl.assets import (
    AssetError,
    check,
    fetch_all,
    integrity_of,
    load_manifest,
    main,
    verify_integrity,
)

pytestmark = pytest.mark.unit

URL = "https://registry.npmjs.org/demo/-/demo-1.2.3.tgz"


def tarball(members: dict[str, bytes]) -> bytes:
    """A gzipped tarball holding ``members``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


TARBALL = tarball(
    {
        "package/dist/demo.min.js": b"console.log('demo');\n",
        "package/LICENSE": b"MIT\n",
        "package/evil.js": b"alert(1)\n",
    }
)


def write_manifest(tmp_path: Path, integrity: str, to: str = "static/vendor/demo") -> Path:
    """A manifest of the demo package under ``tmp_path``/deploy/assets."""
    manifest = tmp_path / "deploy" / "assets" / "assets.lock.json"
    manifest.parent.mkdir(parents=True)
    files = [
        {"from": "package/dist/demo.min.js", "to": f"{to}/demo.min.js"},
        {"from": "package/LICENSE", "to": f"{to}/LICENSE"},
    ]
    package = {"name": "demo", "version": "1.2.3", "tarball": URL, "integrity": integrity}
    manifest.write_text(json.dumps({"version": 1, "packages": [{**package, "files": files}]}))
    return manifest


def registry(content: bytes = TARBALL) -> httpx.Client:
    """A client whose transport answers the demo tarball."""

    def answer(request: httpx.Request) -> httpx.Response:
        if str(request.url) == URL:
            return httpx.Response(200, content=content)
        return httpx.Response(404)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_integrity_is_the_sri_form_npm_publishes() -> None:
    data = b"tarball bytes"
    expected = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    assert integrity_of(data) == expected
    verify_integrity(data, expected)
    # Several hashes: the strongest algorithm decides.
    verify_integrity(data, f"{integrity_of(b'other', 'sha256')} {expected}")
    with pytest.raises(AssetError, match="integrity mismatch"):
        verify_integrity(data, integrity_of(b"other"))
    with pytest.raises(AssetError, match="no usable hash"):
        verify_integrity(data, "md5-abc")


def test_fetch_verifies_extracts_only_listed_files_and_records_their_hashes(
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path, integrity_of(TARBALL))
    assert fetch_all(manifest, tmp_path, registry()) == ["demo@1.2.3: 2 files"]
    vendor = tmp_path / "static" / "vendor" / "demo"
    assert sorted(p.name for p in vendor.iterdir()) == ["LICENSE", "demo.min.js"]
    assert (vendor / "demo.min.js").read_bytes() == b"console.log('demo');\n"
    recorded = json.loads(manifest.read_text())["packages"][0]["files"]
    assert recorded[1]["sha256"] == hashlib.sha256(b"MIT\n").hexdigest()
    assert check(load_manifest(manifest), tmp_path) == []

    (vendor / "demo.min.js").write_bytes(b"console.log('edited by hand');\n")
    (vendor / "LICENSE").unlink()
    problems = check(load_manifest(manifest), tmp_path)
    assert len(problems) == 2
    assert "edited by hand, or stale" in problems[0]
    assert "missing" in problems[1]
    assert main(["--check", "--manifest", str(manifest), "--root", str(tmp_path)]) == 1


def test_a_tarball_that_is_not_the_pinned_one_writes_nothing(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, integrity_of(TARBALL))
    tampered = tarball({"package/dist/demo.min.js": b"evil()", "package/LICENSE": b"MIT\n"})
    with pytest.raises(AssetError, match=r"demo@1\.2\.3: integrity mismatch"):
        fetch_all(manifest, tmp_path, registry(tampered))
    assert not (tmp_path / "static").exists()


def test_a_member_missing_from_the_tarball_is_an_error(tmp_path: Path) -> None:
    small = tarball({"package/dist/demo.min.js": b"x"})
    manifest = write_manifest(tmp_path, integrity_of(small))
    with pytest.raises(AssetError, match="has no package/LICENSE"):
        fetch_all(manifest, tmp_path, registry(small))


@pytest.mark.parametrize("to", ["../outside", "/etc/vendor"])
def test_targets_stay_inside_the_repository(tmp_path: Path, to: str) -> None:
    manifest = write_manifest(tmp_path, integrity_of(TARBALL), to=to)
    with pytest.raises(AssetError, match="not a relative path"):
        load_manifest(manifest)
