"""Stream training batches from a gamestore into PyTorch (needs the ``torch`` extra).

::

    from torch.utils.data import DataLoader
    from gamestore.torch import PositionDataset, ResumableLoader, passthrough

    ds = PositionDataset("runs/store", where="board_type = 'square8' AND num_players = 2",
                         newest_games=50_000, batch_size=512, seed=1)
    loader = ResumableLoader(ds, num_workers=2)
    # or: DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)   (torchdata's StatefulDataLoader too)
    for epoch in range(10):
        loader.set_epoch(epoch)
        for batch in loader:
            ...                                   # batch["policy_prob"], batch["value_mover"], ...
        torch.save(loader.state_dict(), "loader.pt")   # valid between any two batches too

Workers (forked) send batches through shared memory; persistent workers
follow ``set_epoch`` (see :mod:`gamestore.positions.sync`).  ``import
gamestore`` never imports torch; importing this module does.
"""
from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("gamestore.torch needs PyTorch: pip install 'gamestore[torch]'") from exc

from .positions.batch import Batch
from .positions.dataset import DatasetError, PositionDataset
from .positions.loader import ResumableLoader, passthrough
from .positions.plan import Plan, StateMismatchError

__all__ = ["PositionDataset", "Batch", "ResumableLoader", "passthrough", "Plan", "DatasetError", "StateMismatchError"]
