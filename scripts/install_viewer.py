"""Install the browser viewer's vendor files (OpenSeadragon) into ngio_async/web/static/vendor/.

Standard library only, so it runs before the virtualenv exists. The npm tarball is fetched with
``npm pack`` when npm is on PATH, else downloaded from the npm registry with urllib; either way its
sha512 integrity is checked against the pinned value before anything is unpacked. Idempotent: an
install whose VERSION file names the pinned version is left alone.

Usage: ``python scripts/install_viewer.py [--force]`` (``make viewer``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

NAME = "openseadragon"
VERSION = "6.1.1"
INTEGRITY = "sha512-g4iKe2q8B642SaBT3+x4ZF3/8b1TxPPydyjmtrOLgDrlYWMKd9ZXM+1Cb/xa9DVySkvs/7l6HR1nHKfD5F3Tsw=="
TARBALL = f"https://registry.npmjs.org/{NAME}/-/{NAME}-{VERSION}.tgz"
DEST = Path(__file__).resolve().parent.parent / "ngio_async" / "web" / "static" / "vendor" / NAME
BUILD = "package/build/openseadragon/"
WANTED = ("openseadragon.min.js", "images/")
EXTRA = {"package/LICENSE.txt": "LICENSE.txt"}

__all__ = ["DEST", "VERSION", "install", "installed", "main"]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def installed(dest: Path = DEST) -> bool:
    """True when ``dest`` holds the pinned version (VERSION stamp, min.js and icons)."""
    stamp = dest / "VERSION"
    return (
        stamp.is_file()
        and stamp.read_text().strip() == VERSION
        and (dest / "openseadragon.min.js").is_file()
        and any((dest / "images").glob("*.png"))
    )


def _fetch_npm(tmp: Path) -> bytes | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    result = subprocess.run(
        [npm, "pack", f"{NAME}@{VERSION}", "--pack-destination", str(tmp), "--silent"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    tgz = tmp / f"{NAME}-{VERSION}.tgz"
    if result.returncode != 0 or not tgz.is_file():
        _say(f"npm pack failed ({result.stderr.strip()[:200]}); downloading instead")
        return None
    return tgz.read_bytes()


def _fetch_url() -> bytes:
    with urllib.request.urlopen(TARBALL, timeout=120) as response:
        data: bytes = response.read()
    return data


def _check_integrity(data: bytes) -> None:
    algo, _, expected = INTEGRITY.partition("-")
    actual = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{NAME}-{VERSION}.tgz: integrity mismatch ({algo}-{actual})")


def _unpack(data: bytes, out: Path) -> int:
    count = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            rel = EXTRA.get(member.name)
            if rel is None and member.name.startswith(BUILD):
                rel = member.name[len(BUILD) :]
                if not rel.startswith(WANTED) or rel.endswith(".map") or ".." in rel:
                    rel = None
            if rel is None:
                continue
            src = tar.extractfile(member)
            assert src is not None
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read())
            count += 1
    return count


def install(dest: Path = DEST, *, force: bool = False) -> bool:
    """Install the pinned OpenSeadragon into ``dest``; return False when it was already there."""
    if not force and installed(dest):
        return False
    with tempfile.TemporaryDirectory(prefix="ngio-viewer-") as tmp_name:
        tmp = Path(tmp_name)
        data = _fetch_npm(tmp) or _fetch_url()
        _check_integrity(data)
        staging = tmp / "out"
        count = _unpack(data, staging)
        (staging / "VERSION").write_text(VERSION + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), dest)
    _say(f"installed {NAME} {VERSION} ({count} files) into {dest}")
    return True


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    if not install(force="--force" in argv):
        _say(f"{NAME} {VERSION} already installed in {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
