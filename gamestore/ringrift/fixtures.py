"""Locate and decompress the RingRift GameReplayDB fixture files (tests and benchmarks)."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FIXTURE_NAMES", "fixture_dir", "decompress_fixtures"]

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
