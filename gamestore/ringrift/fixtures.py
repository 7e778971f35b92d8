"""Decompress the RingRift GameReplayDB fixtures and extract RingRift's source snapshot.

Used by tests and benchmarks, which say where the files are (``tests/conftest.py``
finds them from the repository: ``tests/fixtures/ringrift``, ``../shared``); nothing
here is located relative to the installed package.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FIXTURE_NAMES", "decompress_fixtures", "extract_source"]

FIXTURE_NAMES = ("ringrift_v18_sample", "ringrift_v18_history")


def decompress_fixtures(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> dict[str, Path]:
    """Decompress every ``<name>.db.zst`` of directory ``src`` into ``dest``; returns name -> path of the ``.db`` file.

    ``FileNotFoundError`` names the first fixture missing from ``src``.
    """
    import zstandard

    out = {}
    for name in FIXTURE_NAMES:
        packed = Path(src) / f"{name}.db.zst"
        if not packed.is_file():
            raise FileNotFoundError(f"RingRift fixture {packed} not found")
        path = Path(dest) / f"{name}.db"
        if not path.exists():
            path.write_bytes(zstandard.ZstdDecompressor().decompress(packed.read_bytes()))
        out[name] = path
    return out


def extract_source(tarball: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract RingRift's source snapshot ``tarball`` (``ringrift-src.tar.zst``) into ``dest``.

    Returns its ``ai-service`` directory (put it on ``sys.path`` to import RingRift's ``app``).
    """
    import io
    import sys
    import tarfile

    import zstandard

    with open(tarball, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
        data = io.BytesIO(r.read())
    with tarfile.open(fileobj=data) as tar:
        if sys.version_info >= (3, 12):
            tar.extractall(dest, filter="tar")
        else:
            tar.extractall(dest)
    return Path(dest) / "ringrift" / "ai-service"
