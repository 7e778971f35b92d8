"""Processes of the cluster test (tests/test_cluster.py): a trainer streaming from the hub.

Run as ``python helpers/cluster_workers.py trainer '<json args>'`` with :func:`helpers.subprocess_env`.
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path


def role_trainer(args: dict) -> None:
    """Stream epoch after epoch from the hub; record, per epoch, the positions seen of every game.

    Transient errors while the server is down are retried (a trainer would);
    they are counted, and any other exception is a failure.
    """
    from gamestore.torch import PositionDataset

    stop = Path(args["stop"])
    report: dict = {"epochs": [], "transient": 0, "errors": []}
    ds = None
    epoch = 0
    while True:
        final = stop.exists()
        try:
            if ds is None:
                ds = PositionDataset(args["hub"], shuffle=True, batch_size=128, seed=epoch)
            else:
                ds.set_epoch(epoch)
            counts: Counter = Counter()
            for batch in ds:
                counts.update(batch["game_id"])
            report["epochs"].append({"games": ds.num_games, "positions": dict(counts)})
            epoch += 1
        except OSError as exc:  # the S3 server is down: try again
            report["transient"] += 1
            report["last_transient"] = f"{type(exc).__name__}: {exc}"[:300]
            time.sleep(0.3)
            continue
        except Exception as exc:  # noqa: BLE001 - anything else is a failure
            import traceback

            report["errors"].append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}")
            break
        if epoch == 1:
            Path(args["ready"]).write_text("ready")
        if final:
            break
        time.sleep(args.get("pause", 0.2))
    Path(args["report"]).write_text(json.dumps(report))


ROLES = {"trainer": role_trainer}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
