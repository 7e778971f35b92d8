"""PositionDataset: a resumable, sharded, shuffled torch IterableDataset over stored positions."""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import DatasetError
from . import shared
from .ahead import made_ahead
from .batch import TORCH_DTYPES, Batch
from .buffer import Window, stream
from .decode import SegmentReader
from .gather import UNKNOWN_KEY, Source, address_table, compiled, copy_rows, fill_head, fill_policy
from .plan import (
    TAG_BUFFER,
    Plan,
    Selection,
    StateMismatchError,
    current_snapshot,
    fingerprint,
    partition,
    resolve_plan,
    rng_for,
)
from .sync import EpochSync

if TYPE_CHECKING:  # pragma: no cover
    from ..store import GameStore

__all__ = ["PositionDataset", "DatasetError", "StateMismatchError", "END_OF_WORKER", "Batch"]

STATE_VERSION = 1
#: what a worker yields last in tagged mode (ResumableLoader), after its batches
END_OF_WORKER = "__gamestore_end_of_worker__"
_DTYPES = {"float32": np.float32, "float64": np.float64}
_READ_AHEAD = 3  # at least this many moves batches decompressed ahead on a helper thread
_NATIVE_DEPTH = 4  # batches a window's native producer makes ahead (native_ahead): ~150 KB each at 256 RingRift positions


class PositionDataset(IterableDataset[Any]):
    """Ready training batches (:class:`Batch`: tensors and arrays by name) of the positions of selected games.

    Use with ``DataLoader(ds, batch_size=None, num_workers=k)`` (or
    :class:`~gamestore.torch.ResumableLoader` / torchdata's
    ``StatefulDataLoader`` to save and resume mid-epoch).  One position per
    stored move of every game matching ``where`` (a SQL predicate over the
    ``games`` view), optionally only the newest ``newest_games`` games or the
    newest games holding ``newest_positions`` positions (by ``recency``, a
    SQL expression, default ``created_at``; whole games).  With ``weight``
    (a non-negative SQL expression per game) an epoch is ``num_samples``
    positions (default: as many as selected) drawn with replacement, each
    position with probability proportional to its game's weight.

    Call :meth:`set_epoch` before every epoch: it changes the order and picks
    up games committed since the last call (``persistent_workers=True``
    workers pick it up at their next iteration).  The order is fixed by ``(seed, epoch,
    rank, world_size, batch_size, buffer_size)`` and the shard snapshot taken
    by ``set_epoch`` (broadcast from rank 0 when ``torch.distributed`` is
    initialised): moves batches (~1,000 positions of whole games) in a seeded
    order, split into equal contiguous ranges per rank and per worker, then
    shuffled within windows of ``buffer_size`` positions.  Every position of
    the selection comes exactly once per epoch over all ranks and workers;
    with ``drop_last`` every rank gets the same number of full batches and
    the remainder is dropped (with ``policy_only``, ranks may differ).

    Each batch is a :class:`~gamestore.torch.Batch` (used like a dict; not a
    ``Mapping``, so torch's default collation passes it through untouched;
    ``batch.to(device)``).  Keys: ``game_id`` and
    ``board_type`` (numpy object arrays of str),
    ``move_number``, ``player``, ``num_players``, ``winner`` (LongTensor; -1
    when absent), ``value`` ([B, P] float, per player number
    ``first_player + j``: ``win_value``/``loss_value``, ``draw_value`` without
    a winner, 0 past the game's player count) with ``value_mask``,
    ``value_mover`` ([B], the mover's entry), ``policy_index`` ([B, K] long:
    the action id, or ``action_map[key]`` for keyed candidates, -1 padding
    or unmapped), ``policy_prob`` ([B, K], the exact probability as
    ``policy_dtype``), ``policy_mask``, ``has_policy``, ``policy_keys``
    (object array of lists of str/None, with ``return_keys=True``), ``policy_dense``
    ([B, action_size], with ``action_size``), ``vec_<name>`` ([B, *shape]
    float32) with ``vec_<name>_mask``, and each of ``columns`` (a tensor for
    numeric columns, else an object array).  ``transform(batch)`` runs last, in the
    worker.

    ``assemble_ahead`` (default: the environment variable
    ``GAMESTORE_ASSEMBLE_AHEAD``, ``1`` on, else off): outside DataLoader
    worker processes, make the next batches on one helper thread while the
    current one is used (the same batches in the same order, the same resume
    state; ``transform`` still runs on the iterating thread; the thread
    stops with the iteration).

    ``native_ahead`` (default on; the environment variable
    ``GAMESTORE_NATIVE_AHEAD=0`` turns the default off; compiled backend
    only): outside DataLoader worker processes, each window's batches after
    its first are made ahead by a native thread of its compiled assembler (it
    never takes the GIL: the iterating thread only wraps the made arrays as
    tensors); the same batches in the same order; the thread stops with the
    iteration.  Its blocks come from one pool per iteration and go back to it
    when a batch's tensors die (no fresh allocation, page faults or munmap
    per batch).  On by default because it is the faster layout for the
    documented DataLoader idiom (benchmarks/README.md, tenth and eleventh
    quiet rounds, the 2-core machine, read-ahead on): 92.2% of serial direct
    iteration's speed at 256 per batch against 77.6% without it, 95.3%
    against 89.9% at 1,024 (``benchmarks.idiom_modes``); in
    ``bench_torch_ringrift``'s pairs 2.45 M positions/s against 2.24 M at
    256, 2.46 M against 2.07 M at 1,024.  Direct iteration runs about as
    fast or faster (2.85 M against 2.57 M; 2.62 M against 2.34 M).
    """

    def __init__(
        self,
        store_or_path: Any,
        *,
        where: str | None = None,
        newest_games: int | None = None,
        newest_positions: int | None = None,
        recency: str = "created_at",
        weight: str | None = None,
        num_samples: int | None = None,
        policy_only: bool = False,
        seed: int = 0,
        shuffle: bool = True,
        batch_size: int = 256,
        buffer_size: int = 16384,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        epoch: int = 0,
        vectors: Sequence[str] | None = None,
        columns: Sequence[str] = (),
        action_map: Mapping[Any, int] | None = None,
        action_size: int | None = None,
        unknown_keys: Literal["error", "ignore"] = "error",
        max_candidates: int | None = None,
        return_keys: bool = False,
        max_players: int | None = None,
        first_player: int = 1,
        win_value: float = 1.0,
        loss_value: float = -1.0,
        draw_value: float = 0.0,
        policy_dtype: Literal["float32", "float64"] = "float32",
        transform: Callable[[dict[str, Any]], Any] | None = None,
        assemble_ahead: bool | None = None,
        native_ahead: bool | None = None,
    ) -> None:
        super().__init__()
        if batch_size <= 0 or buffer_size < 0:
            raise ValueError("batch_size must be positive and buffer_size non-negative")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError("seed must be a non-negative int")
        if unknown_keys not in ("error", "ignore"):
            raise ValueError("unknown_keys must be 'error' or 'ignore'")
        if policy_dtype not in _DTYPES:
            raise ValueError("policy_dtype must be 'float32' or 'float64'")
        self._selection = Selection(where, newest_games, newest_positions, recency, weight, num_samples)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.batch_size = int(batch_size)
        self.buffer_size = int(buffer_size)
        self.drop_last = bool(drop_last)
        self.policy_only = bool(policy_only)
        self.rank, self.world_size, self._from_dist = _rank_world(rank, world_size)
        self._vectors = None if vectors is None else list(vectors)
        self._columns = list(columns)
        self._action_map = dict(action_map) if action_map is not None else None
        if action_size is not None and action_size <= 0:
            raise ValueError("action_size must be positive")
        self.action_size = action_size
        self._unknown_keys = unknown_keys
        self.max_candidates = max_candidates
        self.return_keys = bool(return_keys)
        self._max_players = max_players
        self._first_player = int(first_player)
        self._values = (float(win_value), float(loss_value), float(draw_value))
        self._policy_dtype = _DTYPES[policy_dtype]
        self._prob_dtype = np.dtype(self._policy_dtype)
        self.transform = transform
        if assemble_ahead is None:
            assemble_ahead = os.environ.get("GAMESTORE_ASSEMBLE_AHEAD", "0") == "1"
        self.assemble_ahead = bool(assemble_ahead)
        if native_ahead is None:
            native_ahead = os.environ.get("GAMESTORE_NATIVE_AHEAD", "1") != "0"
        self.native_ahead = bool(native_ahead)

        from ..store import GameStore

        from ..storage import Storage

        if isinstance(store_or_path, GameStore):
            self._path: Storage = store_or_path.storage
            self._store: GameStore | None = store_or_path
            self._owns_store = False
        else:
            self._path = Storage.from_location(store_or_path)
            self._store = None
            self._owns_store = True
        self._store_pid = os.getpid() if self._store is not None else None
        self._reader: SegmentReader | None = None
        self._reader_pid: int | None = None
        self._value_cache: tuple[Any, ...] | None = None
        self._table_cache: tuple[Plan, dict[str, np.ndarray]] | None = None
        self._progress: dict[str, Any] | None = None
        self._resume: dict[str, Any] | None = None
        self._plan_cache: tuple[tuple[Any, ...], Plan] | None = None
        self._sync = EpochSync()
        self._plan: Plan = self._resolve(int(epoch))
        self._sync.track(self._plan)
        shared.ensure_arena()  # before any DataLoader worker forks from this process
        compiled()  # imported here once: else every DataLoader worker (new each epoch) would import it again
        self._share(self._plan)

    # -- store and plan ---------------------------------------------------------------
    def _get_store(self) -> GameStore:
        """The store handle of this process (opened anew after a fork: no DuckDB state crosses it)."""
        if self._store is None or self._store_pid != os.getpid():
            from ..store import open as open_store

            self._store = open_store(self._path, create=False)
            self._store_pid = os.getpid()
            self._owns_store = True
        return self._store

    def _resolve(self, epoch: int, snapshot: Sequence[str] | None = None) -> Plan:
        store = self._get_store()
        if snapshot is None and self._from_dist and self.world_size > 1 and get_worker_info() is None:
            import torch.distributed as dist

            box = [current_snapshot(store) if dist.get_rank() == 0 else None]
            dist.broadcast_object_list(box, src=0)
            snapshot = box[0]
        if snapshot is None:
            snapshot = current_snapshot(store)
        # the same shards (and declared vectors) select the same games: an unweighted plan differs only in its epoch
        key = (tuple(sorted(snapshot)), tuple(sorted(store.catalog.vectors())))
        cached = self._plan_cache
        if cached is not None and cached[0] == key and not cached[1].weighted:
            return dataclasses.replace(cached[1], epoch=epoch)
        plan = resolve_plan(store, self._selection, epoch=epoch, seed=self.seed, snapshot=snapshot, vectors=self._vectors)
        self._plan_cache = (key, plan)
        return plan

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: a new order, and the games committed since the last call.

        With ``torch.distributed`` initialised this is collective (every rank calls it).
        """
        self._plan = self._resolve(int(epoch))
        shared.reclaim()
        self._progress = None
        self._resume = None
        self._publish()

    @property
    def epoch(self) -> int:
        return self._plan.epoch

    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def num_games(self) -> int:
        """Games selected this epoch (all ranks)."""
        return self._plan.num_games

    @property
    def num_positions(self) -> int:
        """Positions this epoch over all ranks (before the ``policy_only`` filter)."""
        return self._plan.num_positions

    # -- state ---------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        return fingerprint(
            {
                "selection": self._selection.key(),
                "seed": self.seed,
                "shuffle": self.shuffle,
                "batch_size": self.batch_size,
                "buffer_size": self.buffer_size,
                "drop_last": self.drop_last,
                "policy_only": self.policy_only,
                "rank": self.rank,
                "world_size": self.world_size,
            }
        )

    def _state(self, num_workers: int | None, batches: Mapping[int, int]) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "fingerprint": self._fingerprint(),
            "epoch": self._plan.epoch,
            "snapshot": list(self._plan.snapshot),
            "num_workers": num_workers,
            "batches": {int(w): int(n) for w, n in batches.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """Where this process's iteration stands (epoch, shard snapshot, batches per worker)."""
        if self._progress is not None:
            return self._state(self._progress["num_workers"], self._progress["batches"])
        if self._resume is not None:
            return self._state(self._resume["num_workers"], self._resume["batches"])
        return self._state(None, {})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next iteration continue exactly where ``state`` was taken."""
        if state.get("version") != STATE_VERSION:
            raise StateMismatchError(f"unsupported state version {state.get('version')!r}")
        if state.get("fingerprint") != self._fingerprint():
            raise StateMismatchError("the state was saved by a dataset with other selection/shuffle/sharding options")
        epoch, snapshot = int(state["epoch"]), list(state["snapshot"])
        if self._plan.epoch != epoch or self._plan.snapshot != sorted(snapshot):
            self._plan = self._resolve(epoch, snapshot)
        self._resume = {"num_workers": state.get("num_workers"), "batches": {int(w): int(n) for w, n in state["batches"].items()}}
        self._progress = None
        self._publish()

    def _publish(self) -> None:
        """Let persistent DataLoader workers see this process's epoch and resume state at their next iteration."""
        if get_worker_info() is None:
            self._share(self._plan)
            self._sync.publish(resume=self._resume, plan=self._plan)

    def _share(self, plan: Plan, holder: int | None = None) -> None:
        """Share ``plan``'s game tables: workers send a batch's game ids and boards as indices into them."""
        shared.share_tables(plan.token, {"game_id": plan.game_ids, "board_type": self._plan_tables(plan)["boards"]},
                            holder=holder)  # fmt: skip

    def _catch_up(self) -> None:
        """In a worker: take the state the training process published since this copy was made."""
        state = self._sync.pending()
        if state is not None:
            if "plan" in state:
                self._share(state["plan"], holder=os.getppid())  # the training process shared it when it published it
            self._plan = state["plan"] if "plan" in state else dataclasses.replace(self._plan, epoch=state["epoch"])
            self._resume = state["resume"]
            self._progress = None

    def _clear_resume(self) -> None:
        self._resume = None

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        return self._iterate(tagged=False)

    def _segment_reader(self) -> SegmentReader:
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = SegmentReader(
                self._path, policy_only=self.policy_only, columns=self._columns, prob_dtype=self._policy_dtype,
                action_map=self._action_map, unknown_keys=self._unknown_keys,
                decoders=1 if get_worker_info() is not None else 2,  # DataLoader workers already decode side by side
            )
            self._reader_pid = os.getpid()
        return self._reader

    def _iterate(self, *, tagged: bool) -> Iterator[Any]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            shared.worker_started()
            self._catch_up()
        skip = 0
        if self._resume is not None:
            expected = self._resume["num_workers"]
            if expected is not None and expected != num_workers:
                raise StateMismatchError(f"the state was saved with {expected} worker(s), not {num_workers}")
            skip = self._resume["batches"].get(worker, 0)
            self._resume = None  # one iteration resumes (a persistent worker's next one starts the epoch afresh)
        plan = self._plan
        reader = self._segment_reader()
        segments = partition(
            plan,
            seed=self.seed,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            worker=worker,
            num_workers=num_workers,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
        )
        progress: dict[str, Any] = {"num_workers": num_workers, "batches": {worker: skip}}
        self._progress = progress
        position = {seg: i for i, seg in enumerate(segments)}
        # read ahead a whole window (local stores): the helper threads decode the next window while this one is cut
        # into batches; object storage keeps a few batches ahead (a shard's file is downloaded whole)
        ends = np.cumsum([hi - lo for _, lo, hi in segments], dtype=np.int64)
        ahead = max(self.buffer_size, self.batch_size) if self.shuffle and reader.storage.local else 0
        submitted = 0  # segments handed to the read-ahead thread so far

        def read(seg: Any) -> Any:
            nonlocal submitted
            i = position[seg]
            stop = max(i + 1 + _READ_AHEAD, int(np.searchsorted(ends, ends[i] + ahead)) + 1)
            if stop > submitted:
                reader.prefetch(plan, segments[max(i + 1, submitted) : stop])
                submitted = stop
            return reader.read(plan, seg, seed=self.seed)

        batches = stream(
            segments,
            read=read,
            count=lambda seg: reader.count(plan, seg, seed=self.seed),
            window_rng=lambda w: rng_for(self.seed, plan.epoch, TAG_BUFFER, self.rank, worker, w),
            shuffle=self.shuffle,
            buffer_size=self.buffer_size,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
            skip=skip,
        )
        fast = compiled()
        made: Generator[Batch, None, None] = self._assembled(batches, plan, fast, native=info is None)
        if self.assemble_ahead and info is None:  # a DataLoader worker's process already overlaps the training one
            made = made_ahead(made)
        try:
            for made_batch in made:
                batch: Any = made_batch
                if self.transform is not None:
                    batch = self.transform(batch)
                progress["batches"][worker] += 1  # at the yield: a resume replays exactly what was delivered
                yield (worker, batch) if tagged else batch
        finally:
            made.close()  # the assembling thread first: it reads with the reader
            reader.stop_prefetch()  # no helper thread outlives an iteration (fork safety)
        if tagged:
            yield (worker, END_OF_WORKER)

    # -- batch assembly -------------------------------------------------------------------------
    def _assembled(self, batches: Iterator[tuple[Window, int, int]], plan: Plan, fast: Any, *,
                   native: bool) -> Generator[Batch, None, None]:
        """The batches of ``batches``; a window's compiled assembler is closed (its producer thread, if any, joined)
        when the next window starts and when this generator ends (exhausted, closed, or raising)."""
        depth = _NATIVE_DEPTH if native and self.native_ahead and fast is not None else 0
        # the producers' blocks, reused once a batch's tensors are gone (one pool for the iteration's windows: a
        # window's first batches need no fresh allocation either)
        pool = fast.BlockPool(depth + 4) if depth else None
        current = None
        try:
            for win, a, b in batches:
                try:
                    batch = self._to_batch(win, a, b, plan, fast, depth, pool)
                finally:
                    asm = win.cache.get("asm")
                    if asm is not current:
                        if current is not None:
                            current.close()
                        current = asm
                yield batch
        finally:
            if current is not None:
                current.close()

    def _window_columns(self, win: Window, plan: Plan, fast: Any, ahead: int = 0, pool: Any = None) -> dict[str, Any]:
        """The window's per-position indices and objects in stream order (once per window; a batch takes slices)."""
        cols = win.cache
        if cols:
            return cols
        parts = win.parts
        flat: list[np.ndarray] = []  # position in the parts' concatenation (made on first use)

        def per_part(get: Callable[[Any], np.ndarray], empty: Any = np.int64) -> np.ndarray:
            if not parts:
                return np.zeros(0, empty)
            if not flat:
                sizes = np.fromiter((p.n for p in parts), dtype=np.int64, count=len(parts))
                flat.append((np.cumsum(sizes) - sizes)[win.part] + win.pos)
            got: np.ndarray = np.concatenate([get(p) for p in parts])[flat[0]]
            return got

        cols["srcs"] = srcs = [p.src for p in parts]
        cols["part"] = win.part
        if fast is not None:  # the same gathers in one compiled pass
            cols["row"], games = fast.window_rows([np.ascontiguousarray(p.rows, np.int64) for p in parts],
                                                  [np.ascontiguousarray(p.games, np.int64) for p in parts],
                                                  win.part, np.ascontiguousarray(win.pos, np.int64))
        else:
            cols["row"], games = per_part(lambda p: p.rows), per_part(lambda p: p.games)
        cols["game"] = games
        cols["game_id"] = plan.game_ids[games]
        cols["board"] = boards = plan.game_board[games]
        tables = self._plan_tables(plan)
        cols["board_type"] = tables["boards"][boards]
        # in a worker whose training process holds the plan's tables: batches travel with indices, not strings (a
        # transform may change the arrays in place: then by value)
        cols["codes"] = plan.token if self.transform is None and shared.parent_tables(plan.token) else None
        # the extra columns: numeric ones as one array per window (a batch's tensor is torch.from_numpy of a slice)
        cols["tensors"], cols["objects"] = {}, {}
        for name in self._columns:
            col = per_part(lambda p: p.src.extra[name][p.rows], object)
            cols["objects" if col.dtype == object else "tensors"][name] = np.ascontiguousarray(col)
        # a batch needs nothing past the assembler's items (the common case: Batch.of them as they are)
        cols["plain"] = not (self._columns or self.return_keys or self.action_size is not None or cols["codes"])
        # compiled: the window's batches made by one Assembler (checked once here; one call per batch)
        cols["asm"] = None if fast is None else fast.Assembler(
            address_table(srcs, list(plan.vectors)), cols["part"], cols["row"], games, tables["players"],
            tables["winner"], tables["value"], tables["present"], self._first_player,
            -1 if self.max_candidates is None else self.max_candidates, self._prob_dtype == np.float64,
            tuple((name, tuple(spec.shape)) for name, spec in plan.vectors.items()), UNKNOWN_KEY, cols["game_id"],
            cols["board_type"], torch.from_numpy, ahead, srcs, pool,
        )
        return cols

    def _plan_tables(self, plan: Plan) -> dict[str, np.ndarray]:
        """Per-game lookups of ``plan`` as the batch dtypes (cached per plan): see :func:`gather.fill_head`."""
        cache = self._table_cache
        if cache is None or cache[0] is not plan:
            value, present = self._game_values(plan)
            cache = self._table_cache = (plan, {
                "boards": np.asarray(plan.boards + [None], dtype=object),  # board index -1 -> None
                "players": np.ascontiguousarray(plan.game_players, dtype=np.int64),
                "winner": np.ascontiguousarray(plan.game_winner, dtype=np.int64),
                "value": value,
                "present": present,
            })
        return cache[1]

    def _to_batch(self, win: Window, a: int, b: int, plan: Plan, fast: Any, ahead: int = 0, pool: Any = None) -> Batch:
        """The batch of positions ``a:b`` of window ``win``: each position's data copied once, straight from its source
        (compiled: one :class:`Assembler` call, its loops without the GIL, with a native producer ``ahead`` slots
        deep when ``ahead``; else the numpy reference gathers)."""
        w = win.cache or self._window_columns(win, plan, fast, ahead, pool)
        asm = w["asm"]
        if asm is None:
            items, lens, width = self._reference_items(w, a, b, plan)
        else:
            items = asm.batch(a, b)
            if items is None or asm.first_unknown >= 0:
                self._check_batch(w, a, asm.lens, asm.number, asm.widest, asm.first_unknown)
            if w["plain"]:
                return Batch.of(items)
            lens, width = asm.lens, int(items["policy_index"].shape[1])
        tensors = w["tensors"]
        for name in self._columns:
            items[name] = torch.from_numpy(tensors[name][a:b]) if name in tensors else w["objects"][name][a:b]
        if self.return_keys:
            srcs, part, row = w["srcs"], w["part"][a:b], w["row"][a:b]
            items["policy_keys"] = _object_array(
                [[self._key_at(srcs, p, r, k) for k in range(min(ln, width))] for p, r, ln in zip(part, row, lens)]
            )
        if self.action_size is not None:
            items["policy_dense"] = self._dense(
                items["policy_index"].numpy(), items["policy_prob"].numpy(), items["policy_mask"].numpy()
            )
        token = w["codes"]
        if token is None:
            return Batch.of(items)
        codes = {"game_id": (w["game"][a:b], items["game_id"]), "board_type": (w["board"][a:b], items["board_type"])}
        return Batch.of(items, (token, codes))

    def _reference_items(self, w: dict[str, Any], a: int, b: int, plan: Plan) -> tuple[dict[str, Any], np.ndarray, int]:
        """The numpy reference's items of positions ``a:b`` (what the compiled Assembler makes), their policy lengths
        and width."""
        srcs, games = w["srcs"], self._plan_tables(plan)
        part, row = w["part"][a:b], w["row"][a:b]
        head, value, value_mask, mover, has_policy, lens, widest = fill_head(
            srcs, part, row, w["game"][a:b], games, self._first_player
        )
        width = widest
        if self.max_candidates is not None:
            if widest > self.max_candidates:
                self._check_batch(w, a, lens, head[0], widest, -1)
            width = self.max_candidates
        index, prob, mask, unknown = fill_policy(srcs, part, row, lens, width, self._prob_dtype)
        if unknown >= 0:
            self._check_batch(w, a, lens, head[0], widest, unknown)
        tensor = torch.from_numpy
        items: dict[str, Any] = {"game_id": w["game_id"][a:b], "board_type": w["board_type"][a:b]}
        items["move_number"], items["player"], items["num_players"], items["winner"] = map(tensor, head)
        items["value"], items["value_mask"], items["value_mover"] = tensor(value), tensor(value_mask), tensor(mover)
        items["policy_index"], items["policy_prob"], items["policy_mask"] = tensor(index), tensor(prob), tensor(mask)
        items["has_policy"] = tensor(has_policy)
        for name, spec in plan.vectors.items():
            vals, ok = copy_rows(srcs, name, part, row, spec.shape)
            items[f"vec_{name}"], items[f"vec_{name}_mask"] = tensor(vals), tensor(ok)
        return items, lens, width

    def _check_batch(self, w: dict[str, Any], a: int, lens: np.ndarray, number: np.ndarray, widest: int,
                     unknown: int) -> None:
        """Raise what is wrong with the batch at ``a`` of window ``w``: a policy wider than ``max_candidates``, or
        ``unknown`` (>= 0), the first flat position of its ``policy_index`` holding a key missing from ``action_map``."""
        if self.max_candidates is not None and widest > self.max_candidates:
            i = int(np.argmax(lens))
            raise DatasetError(
                f"game {w['game_id'][a + i]!r} move {int(number[i])}: {widest} policy"
                f" candidates, more than max_candidates={self.max_candidates}"
            )
        if unknown >= 0:  # only a dataset with unknown_keys="error" maps keys to UNKNOWN_KEY
            i, k = divmod(unknown, widest if self.max_candidates is None else self.max_candidates)
            key = self._key_at(w["srcs"], w["part"][a + i], w["row"][a + i], k)
            raise DatasetError(f"policy key {key!r} is not in action_map")

    def _key_at(self, srcs: list[Source], p: int, r: int, k: int) -> str | None:
        """The policy key of entry ``k`` of source row ``r`` of part ``p`` (None for an action id)."""
        src = srcs[int(p)]
        code = int(src.code[int(src.off[int(r)]) + k])
        return self._reader.keys[-2 - code] if code <= -2 else None  # type: ignore[union-attr]

    def _dense(self, index: np.ndarray, prob: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        size = int(self.action_size)  # type: ignore[arg-type]
        ok = mask & (index >= 0)
        if np.any(index[ok] >= size):
            raise DatasetError(f"policy index {int(index[ok].max())} does not fit action_size={size}")
        tensor = torch.zeros((index.shape[0], size), dtype=TORCH_DTYPES[np.dtype(self._policy_dtype)])
        r, k = np.nonzero(ok)
        tensor.numpy()[r, index[r, k]] = prob[r, k]
        return tensor

    def _game_values(self, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        """Per selected game: value per player slot [G, P] and which slots are players (cached per plan)."""
        cache = self._value_cache
        if cache is not None and cache[0] is plan:
            return cache[1], cache[2]
        win, loss, draw = self._values
        fp = self._first_player
        width = self._max_players if self._max_players is not None else plan.max_players
        nplayers = plan.game_players.astype(np.int64)[:, None]
        winner = plan.game_winner.astype(np.int64)[:, None]
        number = np.arange(width, dtype=np.int64)[None, :] + fp
        present = number - fp < nplayers
        value = np.where(present, np.where(winner >= fp, np.where(number == winner, win, loss), draw), 0.0)
        self._value_cache = (plan, value.astype(np.float32), present)
        return self._value_cache[1], self._value_cache[2]

    # -- pickling and cleanup ---------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None
        state["_store_pid"] = None
        state["_reader"] = None
        state["_reader_pid"] = None
        state["_plan_cache"] = state["_value_cache"] = state["_table_cache"] = None  # rebuilt on use: small pickles
        return state

    def close(self) -> None:
        """Close the store handle this dataset opened itself (a store passed in stays open)."""
        if self._store is not None and self._owns_store and self._store_pid == os.getpid():
            self._store.close()
        self._store = None
        self._reader = None

    def __enter__(self) -> "PositionDataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<PositionDataset {self._path.uri!r} epoch={self.epoch} games={self.num_games}"
            f" positions={self.num_positions} rank={self.rank}/{self.world_size}>"
        )


def _object_array(items: list[Any]) -> np.ndarray:
    """A 1-d object array of ``items`` (lists stay elements, as torch's collation leaves object arrays alone)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int, bool]:
    if rank is None and world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size(), True
        return 0, 1, False
    if rank is None or world_size is None:
        raise ValueError("give both rank and world_size, or neither")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return int(rank), int(world_size), False
