"""Subprocess of tests/test_corruption.py: damages copies of a store and reads them back.

    python corruption_worker.py TEMPLATE EXPECTED.pkl WORKDIR FIRST LAST OUT.jsonl

For each case in [FIRST, LAST): copy TEMPLATE, damage one file (seeded), read
every game (get_game), scan every move, count games, and classify the case:
``intact`` (every read equal to the original), ``detected`` (a typed
GamestoreError for the damaged shard only, every other shard's games equal),
``wrong`` (a value differs without an error, or an undamaged shard's game
fails), ``untyped`` (an exception outside the GamestoreError tree).  A crash
of this process is seen by the parent: the case in flight is the one after
the last line of OUT.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import sys
import warnings
from pathlib import Path

import gamestore
from gamestore.errors import GamestoreError
from gamestore.records import games_equal

KINDS = ("moves.arrow", "games.arrow", "MANIFEST.json", "segment", "gamestore.json")


def damage(root: Path, case: int, victim: str) -> dict:
    rnd = random.Random(case)
    kind = KINDS[case % len(KINDS)] if case % 7 else rnd.choice(KINDS[:2])
    if kind == "segment":
        path = root / "catalog" / f"{victim}.parquet"
    elif kind == "gamestore.json":
        path = root / "gamestore.json"
    else:
        path = root / "shards" / victim / kind
    data = bytearray(path.read_bytes())
    op = "truncate" if rnd.random() < 0.25 else "flip"
    if op == "flip":
        n_flips = 1 if rnd.random() < 0.8 else rnd.randint(2, 8)
        where = [rnd.randrange(len(data)) for _ in range(n_flips)]
        for w in where:
            data[w] ^= rnd.randint(1, 255)
    else:
        where = [rnd.randrange(len(data))]
        del data[where[0]:]
    path.write_bytes(bytes(data))
    return {"file": kind, "op": op, "at": where}


def run_case(template: Path, expected: dict, workdir: Path, case: int) -> dict:
    root = workdir / f"case{case}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(template, root)
    victim = sorted(expected["by_shard"])[case % len(expected["by_shard"])]
    info = damage(root, case, victim)
    result = {"case": case, **info, "status": "intact", "errors": []}
    victims = set(expected["by_shard"][victim])

    def fail(status: str, what: str) -> None:
        order = ["intact", "detected", "wrong", "untyped"]
        if order.index(status) > order.index(result["status"]):
            result["status"] = status
        result["errors"].append(what[:300])

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store = gamestore.open(root, create=False)
    except GamestoreError as exc:
        if info["file"] != "gamestore.json":
            fail("wrong", f"open failed for a shard-level damage: {exc!r}")
        else:
            fail("detected", repr(exc))
        shutil.rmtree(root, ignore_errors=True)
        return result
    except Exception as exc:  # noqa: BLE001
        fail("untyped", f"open: {exc!r}")
        shutil.rmtree(root, ignore_errors=True)
        return result
    with store:
        for gid, game in expected["games"].items():
            try:
                got = store.get_game(gid)
            except GamestoreError as exc:
                fail("detected" if gid in victims else "wrong", f"get_game {gid}: {exc!r}")
                continue
            except Exception as exc:  # noqa: BLE001
                fail("untyped", f"get_game {gid}: {exc!r}")
                continue
            if not games_equal(got, game):
                fail("wrong", f"get_game {gid} returned different data")
        try:
            rows: dict[str, int] = {}
            for batch in store.scan_moves(columns=["game_id", "move_number"]):
                for g in batch.column("game_id").to_pylist():
                    rows[g] = rows.get(g, 0) + 1
            for gid, game in expected["games"].items():
                if gid not in victims and rows.get(gid, 0) != len(game["moves"]):
                    fail("wrong", f"scan: {gid} has {rows.get(gid, 0)} rows, not {len(game['moves'])}")
                elif gid in victims and rows.get(gid, 0) not in (0, len(game["moves"])):
                    fail("wrong", f"scan: damaged {gid} has {rows.get(gid, 0)} rows")
        except GamestoreError as exc:
            fail("detected", f"scan: {exc!r}")
        except Exception as exc:  # noqa: BLE001
            fail("untyped", f"scan: {exc!r}")
        try:
            n = store.count_games()
            if not len(expected["games"]) - len(victims) <= n <= len(expected["games"]):
                fail("wrong", f"count_games {n}")
        except GamestoreError as exc:
            fail("detected", f"count: {exc!r}")
        except Exception as exc:  # noqa: BLE001
            fail("untyped", f"count: {exc!r}")
    shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    if os.environ.get("GAMESTORE_FUZZ_NO_VERIFY"):  # shows what the fuzzer finds without checksums
        from gamestore import checksum

        checksum.VERIFY = False
    template, expected_path, workdir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    first, last, out = int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6])
    expected = pickle.loads(expected_path.read_bytes())
    with open(out, "a", encoding="utf-8") as f:
        for case in range(first, last):
            f.write(json.dumps(run_case(template, expected, workdir, case)) + "\n")
            f.flush()


if __name__ == "__main__":
    main()
