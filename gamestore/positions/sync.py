"""How persistent DataLoader workers see the training process's ``set_epoch`` and ``load_state_dict``.

A worker iterates its own copy of the dataset, made when it started (forked
or unpickled).  With ``persistent_workers=True`` it starts once and would
iterate that copy's epoch forever.  So the dataset publishes its iteration
state in a private temporary directory, made when the dataset is created
(before any worker starts, and reachable from forked and spawned workers
alike): ``state`` (a small pickle, replaced atomically: version, epoch,
pending resume state, plan version) whenever it changes, and ``plan-N``
when the plan itself changed (a new shard snapshot, weighted draws); an
epoch that only renumbers the plan writes no plan file.  A worker reads
``state`` at the start of every iteration (one small file) and picks up
what changed.  The directory goes with the dataset object of the process
that made it.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import weakref
from typing import Any

__all__ = ["EpochSync"]


def _remove(path: str, pid: int) -> None:
    if os.getpid() == pid:  # never from a forked copy
        shutil.rmtree(path, ignore_errors=True)


class EpochSync:
    """The published iteration state of one dataset (see the module docstring)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="gamestore-epochs-")
        self.version = 0  # of the state this copy of the dataset holds
        self.plan_version = 0
        self._arrays: Any = None  # an array of the plan last published (a renumbered plan shares them)
        self._finalizer = weakref.finalize(self, _remove, self.dir, os.getpid())

    def __getstate__(self) -> dict[str, Any]:
        return {"dir": self.dir, "version": self.version, "plan_version": self.plan_version, "_arrays": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)  # no finalizer: the directory belongs to the process that made it

    def track(self, plan: Any) -> None:
        """``plan`` is what every copy of the dataset holds already (when it is made)."""
        self._arrays = plan.game_offset

    def publish(self, *, resume: Any, plan: Any) -> None:
        """Record the dataset's state (in the process that made it)."""
        self.version += 1
        if plan.game_offset is not self._arrays:  # more than the epoch number changed
            self.plan_version += 1
            self._write(f"plan-{self.plan_version}", plan)
            self._arrays = plan.game_offset
        self._write("state", {"version": self.version, "epoch": plan.epoch, "resume": resume, "plan_version": self.plan_version})
        for name in os.listdir(self.dir):  # keep the previous plan: a worker may be about to read it
            if name.startswith("plan-") and int(name[5:]) < self.plan_version - 1:
                os.unlink(os.path.join(self.dir, name))

    def pending(self) -> dict[str, Any] | None:
        """In a worker: the published state when it is newer than this copy's (with ``plan`` when the plan changed)."""
        try:
            with open(os.path.join(self.dir, "state"), "rb") as f:
                state = pickle.load(f)
        except FileNotFoundError:
            return None  # nothing published since the dataset was made: this copy is current
        if state["version"] == self.version:
            return None
        if state["plan_version"] != self.plan_version:
            with open(os.path.join(self.dir, f"plan-{state['plan_version']}"), "rb") as f:
                state["plan"] = pickle.load(f)
        self.version, self.plan_version = state["version"], state["plan_version"]
        return state

    def _write(self, name: str, value: Any) -> None:
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, os.path.join(self.dir, name))
