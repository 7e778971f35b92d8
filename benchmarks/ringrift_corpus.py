"""RingRift-shaped benchmark corpora: the fixture database written by RingRift's own code, games copied under new ids."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the sample fixture: the repository's copy (tests/fixtures/ringrift), else ../shared/fixtures
FIXTURE = next(
    (p for p in (ROOT / "tests" / "fixtures" / "ringrift" / "ringrift_v18_sample.db.zst",
                 ROOT.parent / "shared" / "fixtures" / "ringrift_v18_sample.db.zst") if p.exists()),
    ROOT.parent / "shared" / "fixtures" / "ringrift_v18_sample.db.zst",
)


def expand_db(src: Path, dst: Path, copies: int) -> None:
    """``dst`` = ``src`` plus ``copies - 1`` copies of every game under ids ``<id>-x<k>`` (every table)."""
    shutil.copyfile(src, dst)
    con = sqlite3.connect(dst)
    con.execute("ATTACH ? AS src", (str(src),))
    names = [r[0] for r in con.execute("SELECT name FROM src.sqlite_master WHERE type = 'table'")]
    with con:
        for table in sorted(names, key=lambda t: t == "games"):  # the games triggers want the moves first
            cols = [r[1] for r in con.execute(f"PRAGMA src.table_info({table})")]
            if "game_id" not in cols:
                continue
            for k in range(1, copies):
                sel = ", ".join(f"game_id || '-x{k}'" if c == "game_id" else c for c in cols)
                con.execute(f"INSERT INTO main.{table} ({', '.join(cols)}) SELECT {sel} FROM src.{table}")
    con.execute("DETACH src")
    con.close()



def expanded_fixture(root: Path, copies: int) -> Path:
    """``root/ringrift_x<copies>.db``: the sample fixture with every game ``copies`` times (built once, reused)."""
    import zstandard

    db = root / f"ringrift_x{copies}.db"
    if not db.exists():
        src = root / "sample.db"
        src.write_bytes(zstandard.ZstdDecompressor().decompress(FIXTURE.read_bytes()))
        expand_db(src, db.with_suffix(".tmp"), copies)
        db.with_suffix(".tmp").rename(db)
    return db
