"""Locate and decompress the RingRift GameReplayDB fixture files (tests and benchmarks)."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FIXTURE_NAMES", "fixture_dir", "decompress_fixtures", "source_tarball", "extract_source"]

FIXTURE_NAMES = ("ringrift_v18_sample", "ringrift_v18_history")


def fixture_dir() -> Path | None:
    """The directory holding ``<name>.db.zst``: ``$GAMESTORE_RINGRIFT_FIXTURES``, ``tests/fixtures/ringrift`` or ``../shared/fixtures`` beside the repository."""
    candidates = []
    if os.environ.get("GAMESTORE_RINGRIFT_FIXTURES"):
        candidates.append(Path(os.environ["GAMESTORE_RINGRIFT_FIXTURES"]))
    repo = Path(__file__).resolve().parents[2]
    candidates.append(repo / "tests" / "fixtures" / "ringrift")
    candidates.append(repo.parent / "shared" / "fixtures")
    for d in candidates:
        if (d / f"{FIXTURE_NAMES[0]}.db.zst").is_file():
            return d
    return None


def decompress_fixtures(dest: str | os.PathLike) -> dict[str, Path]:
    """Decompress every fixture into ``dest``; returns name -> path of the ``.db`` file."""
    import zstandard

    src = fixture_dir()
    if src is None:
        raise FileNotFoundError("RingRift fixture databases not found (set GAMESTORE_RINGRIFT_FIXTURES)")
    out = {}
    for name in FIXTURE_NAMES:
        path = Path(dest) / f"{name}.db"
        if not path.exists():
            data = zstandard.ZstdDecompressor().decompress((src / f"{name}.db.zst").read_bytes())
            path.write_bytes(data)
        out[name] = path
    return out


_SOURCE = Path("ringrift-src") / "ringrift-src.tar.zst"


def source_tarball() -> Path | None:
    """RingRift's source snapshot: ``$GAMESTORE_RINGRIFT_SRC`` or ``../shared/ringrift-src/ringrift-src.tar.zst``
    beside the repository (or beside its parent directory, for worktrees)."""
    candidates = [Path(os.environ["GAMESTORE_RINGRIFT_SRC"])] if os.environ.get("GAMESTORE_RINGRIFT_SRC") else []
    repo = Path(__file__).resolve().parents[2]
    candidates += [repo.parent / "shared" / _SOURCE, repo.parent.parent / "shared" / _SOURCE]
    return next((p for p in candidates if p.is_file()), None)


def extract_source(dest: str | os.PathLike) -> Path:
    """Extract the snapshot into ``dest``; returns its ``ai-service`` directory (put it on ``sys.path``)."""
    import io
    import sys
    import tarfile

    import zstandard

    tarball = source_tarball()
    if tarball is None:
        raise FileNotFoundError("RingRift source snapshot not found (set GAMESTORE_RINGRIFT_SRC)")
    with open(tarball, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
        data = io.BytesIO(r.read())
    with tarfile.open(fileobj=data) as tar:
        if sys.version_info >= (3, 12):
            tar.extractall(dest, filter="tar")
        else:
            tar.extractall(dest)
    return Path(dest) / "ringrift" / "ai-service"
