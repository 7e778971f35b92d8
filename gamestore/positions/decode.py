"""Read plan segments from shard files as decoded moves batches (no DuckDB, no torch).

A :class:`SegmentReader` opens ``moves.arrow`` files directly, so DataLoader
workers never need a catalog or a DuckDB connection.  A segment reads as a
:class:`~gamestore.positions.gather.Part`: rows of one
:class:`~gamestore.positions.gather.Source` (the batch's columns, decoded once
per batch), which the dataset gathers into padded batches.  Batches are
decoded by :mod:`gamestore.positions.direct` (only the buffers a dataset
reads, one zstd call without the GIL, numpy views), on read-ahead threads
that also turn them into sources (two, side by side even within one shard;
one in a DataLoader worker); Arrow's IPC reader serves a batch laid out
otherwise and datasets reading extra ``columns``.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ..errors import QueryError, ShardCorruptError
from ..checksum import FileVerifier
from ..ipc_batch import fast_reader
from ..ipc_messages import Damaged, Unsupported
from ..schema import VectorSpec
from ..shard import MOVES_FILE, open_ipc, read_manifest
from ..storage import Storage
from .direct import BufferPool, Decoded, DirectDecoder, KeyOutside
from .gather import UNKNOWN_KEY, Part, Source, compiled, source_addresses
from .plan import Plan

__all__ = ["SegmentReader"]

_MAX_OPEN = 48  # open shard files per reader (a window and the next, read ahead, hold ~40 batches)
_MAX_OPEN_REMOTE = 16  # object storage: each open shard holds its moves file in memory (the stream reads ~8 side by side)
_MAX_SOURCES = 48  # decoded moves batches kept (a window of 16,384 positions reads ~17)
_MAX_AHEAD = 64  # moves batches decoded ahead and not yet read (the stream reads ahead one window)
#: read-ahead threads by default: zstd runs without the GIL, so two decode a window in less time (an epoch's first
#: window is decoded before its first batch, with nothing to overlap it)
_DECODERS = 2
_DOWNLOADS = 4  # object storage: moves files downloaded ahead at once (the requests are latency-bound)


class _Shard:
    """Open readers and decoded dictionaries of one shard's moves file."""

    def __init__(self, storage: Storage, shard_id: str, columns: Sequence[str], data: bytes | None = None, *,
                 direct: bool = False) -> None:
        rel = f"shards/{shard_id}/{MOVES_FILE}"
        self.shard_id = shard_id
        self.file = file = Path(storage.path(rel))
        # format 2: checksums of the schema, dictionaries and footer before Arrow parses them, of each batch
        # before it is decoded (format 1: Arrow's full validation of each batch)
        entry = read_manifest(storage, f"shards/{shard_id}")["files"][MOVES_FILE]
        whole: Path | pa.Buffer = file
        try:
            # local: positioned reads; object storage: the file in one GET (``data``: downloaded ahead; a
            # network failure stays an OSError)
            if storage.local:
                source: pa.NativeFile = pa.OSFile(str(file), "rb")
            else:
                whole = pa.py_buffer(data if data is not None else storage.read_bytes(rel, large=True, size=entry["bytes"]))
                source = pa.BufferReader(whole)
        except FileNotFoundError:
            raise ShardCorruptError("moves.arrow is gone (shard removed by compaction?)", shard_id=shard_id) from None
        except OSError as exc:
            if not storage.local:
                raise
            raise ShardCorruptError(f"moves.arrow unreadable: {exc}", shard_id=shard_id) from exc
        self.verifier = (
            FileVerifier(whole, entry["checksums"], shard_id=shard_id, name=MOVES_FILE, size=entry["bytes"])
            if "checksums" in entry else None
        )
        probe = open_ipc(file, source=source)
        names = probe.schema.names
        self.names = set(names)
        present = [c for c in columns if c in self.names]
        fields = sorted(names.index(c) for c in present)
        # a thread pool costs more than it saves on ~1,000-row batches (and fights DataLoader workers)
        self.reader = open_ipc(file, source=source, fields=fields, threads=False)
        self._source = source
        self._policy_field = names.index("policy")
        self._policy_reader: ipc.RecordBatchFileReader | None = None
        self.lock = threading.Lock()
        self.key_map = np.zeros(0, dtype=np.int32)  # dictionary index -> -2 - key table id
        self.key_index: np.ndarray | None = None  # dictionary index -> policy index (see _key_index)
        # the columns PositionDataset reads, decoded without Arrow arrays (None: Arrow's reader for every batch)
        self.direct: DirectDecoder | None = None
        if direct:
            fast = fast_reader(str(file) if storage.local else whole, probe)
            try:
                self.direct = DirectDecoder(fast) if fast is not None else None
            except (Unsupported, Damaged, ValueError, IndexError):
                self.direct = None

    def policy_batch(self, index: int) -> pa.RecordBatch:
        """Only the policy column of moves batch ``index`` (resumption replays count with it)."""
        with self.lock:
            if self._policy_reader is None:
                self._policy_reader = open_ipc(self.file, source=self._source,
                                               fields=[self._policy_field], threads=False)
            return self._checked(self._policy_reader, index)

    def batch(self, index: int, vectors: Mapping[str, VectorSpec] | None = None,
              pool: BufferPool | None = None) -> "pa.RecordBatch | Decoded":
        """Moves batch ``index``: decoded directly when it can be (``vectors``: the plan's; into a buffer of
        ``pool``), else Arrow's batch."""
        # the direct decoder only reads the mapped file (its caches are filled idempotently): the read-ahead
        # threads decode batches of one shard side by side
        if self.direct is not None and vectors is not None:
            if self.verifier is not None:
                self.verifier.check(index)
            try:
                return self.direct.read(index, dict(vectors), pool)
            except Unsupported:
                pass  # a batch laid out otherwise than gamestore writes: Arrow's reader below
            except (Damaged, ValueError, IndexError) as exc:
                raise ShardCorruptError(f"{MOVES_FILE} batch {index} unreadable: {exc}", shard_id=self.shard_id) from None
        with self.lock:  # Arrow's file reader is not safe for concurrent use (read-ahead threads)
            return self._checked(self.reader, index)

    def _checked(self, reader: ipc.RecordBatchFileReader, index: int) -> pa.RecordBatch:
        if self.verifier is not None:
            self.verifier.check(index)
        try:
            batch = reader.get_record_batch(index)
            if self.verifier is None:
                batch.validate(full=True)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ShardCorruptError(f"{MOVES_FILE} unreadable: {exc}", shard_id=self.shard_id) from None
        return batch


class SegmentReader:
    """Decode (unit, lo, hi) segments of a plan into numpy columns."""

    def __init__(
        self,
        root: "str | Path | Storage",
        *,
        policy_only: bool = False,
        columns: Sequence[str] = (),
        prob_dtype: type = np.float32,
        action_map: Mapping[Any, int] | None = None,
        unknown_keys: str = "ignore",
        decoders: int = _DECODERS,
    ) -> None:
        self.storage = Storage.from_location(root)
        self.decoders = max(1, int(decoders))  # read-ahead threads
        self.prob_dtype = np.dtype(prob_dtype)
        self.policy_only = policy_only
        self.extra = list(columns)
        self._open: OrderedDict[str, _Shard] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: OrderedDict[tuple[int, int], Future] = OrderedDict()  # (shard index, batch) -> batch
        self._fetch_pool: ThreadPoolExecutor | None = None
        self._fetching: OrderedDict[str, Future] = OrderedDict()  # object storage: shard id -> moves.arrow bytes
        self.keys: list[str] = []  # key table: id -> policy key string
        self._key_ids: dict[str, int] = {}
        self._action_map = action_map
        self._unknown = UNKNOWN_KEY if action_map is not None and unknown_keys == "error" else -1
        self._key_lookup = np.zeros(0, dtype=np.int64)
        self._sources: OrderedDict[tuple, Source] = OrderedDict()
        self._buffers = BufferPool()  # decompressed moves batches' memory, reused (no fresh pages per batch)

    def _shard(self, shard_id: str, plan: Plan) -> _Shard:
        sh = self._open.get(shard_id)
        if sh is None:
            cols = ["move_number", "player", "policy"] + [v.column for v in plan.vectors.values()] + self.extra
            fut = self._fetching.pop(shard_id, None)
            data = None
            if fut is not None:
                try:
                    data = fut.result()
                except OSError:
                    data = None  # read again below, and reported the usual way
            sh = _Shard(self.storage, shard_id, cols, data, direct=not self.extra)
            missing = [c for c in self.extra if c not in sh.names]
            if missing:
                raise QueryError(f"unknown move columns: {missing}")
            if sh.direct is not None:  # the file's complete key dictionary (IPC files replace none)
                try:
                    self._add_keys(sh, sh.direct.key_dictionary())
                except Unsupported:
                    sh.direct = None
                except Damaged as exc:
                    raise ShardCorruptError(f"{MOVES_FILE}: {exc}", shard_id=shard_id) from None
            self._open[shard_id] = sh
            while len(self._open) > (_MAX_OPEN if self.storage.local else _MAX_OPEN_REMOTE):
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(shard_id)
        return sh

    # -- read-ahead ---------------------------------------------------------------------------
    def prefetch(self, plan: Plan, segments: Sequence[tuple[int, int, int]]) -> None:
        """Start decoding the moves batches of ``segments`` (the next ones the stream reads) on a helper thread.

        zstd releases the GIL while it decompresses, so this overlaps with the
        work on the current window (batches decoded and not yet read: at most ``_MAX_AHEAD``).
        """
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.decoders, thread_name_prefix="gamestore-readahead")
        if not self.storage.local:
            self._download_ahead(plan, segments)
        shard_of, batch_of, ahead = plan.unit_shard, plan.unit_batch, self._ahead
        for u, _, _ in segments:
            key = (int(shard_of[u]), int(batch_of[u]))
            if key not in ahead:
                sh = self._shard(plan.shards[key[0]], plan)
                # a direct batch becomes its source on the helper thread too (it reads only this shard's keys)
                ahead[key] = self._pool.submit(self._decode, sh, key[1], plan, self._lookup())
        while len(ahead) > _MAX_AHEAD:  # never read (a source served from the cache): the oldest go
            ahead.popitem(last=False)

    def _download_ahead(self, plan: Plan, segments: Sequence[tuple[int, int, int]]) -> None:
        """Object storage: start downloading the moves files of the next shards the segments need."""
        if self._fetch_pool is None:
            self._fetch_pool = ThreadPoolExecutor(_DOWNLOADS, thread_name_prefix="gamestore-download")
        for u, _, _ in segments:
            if len(self._fetching) >= _DOWNLOADS:
                break
            sid = plan.shards[int(plan.unit_shard[u])]
            if sid not in self._open and sid not in self._fetching:
                self._fetching[sid] = self._fetch_pool.submit(self.storage.read_bytes, f"shards/{sid}/{MOVES_FILE}",
                                                              large=True)

    def _decode(self, sh: _Shard, index: int, plan: Plan, lookup: np.ndarray) -> "pa.RecordBatch | Source":
        """Moves batch ``index`` of ``sh``: a source when decoded directly, else Arrow's batch."""
        if sh.direct is not None and compiled() is not None:
            src = self._compiled_source(sh, index, plan, lookup)
            if src is not None:
                return src
        got = sh.batch(index, plan.vectors, self._buffers)
        if not isinstance(got, Decoded):
            return got
        src = self._direct_source(sh, got, plan, lookup)
        if compiled() is not None:
            source_addresses(src, list(plan.vectors))  # here, off the training thread
        return src

    def _compiled_source(self, sh: _Shard, index: int, plan: Plan, lookup: np.ndarray) -> Source | None:
        """What :meth:`_decode` makes of a directly decoded batch, in one compiled call (``_positions.direct_source``;
        :meth:`_Shard.batch` and :meth:`_direct_source` are its spec), or None for a batch it does not take."""
        assert sh.direct is not None
        if sh.verifier is not None:
            sh.verifier.check(index)
        try:
            got = sh.direct.source_columns(index, plan.vectors, self._buffers, sh.key_map, _key_index(sh, lookup))
        except KeyOutside:
            raise ShardCorruptError(f"{MOVES_FILE}: policy key index outside its dictionary", shard_id=sh.shard_id) from None
        except Unsupported:
            return None  # Arrow's reader (through _Shard.batch)
        except (Damaged, ValueError, IndexError) as exc:
            raise ShardCorruptError(f"{MOVES_FILE} batch {index} unreadable: {exc}", shard_id=sh.shard_id) from None
        if got is None:
            return None
        number, player, off, lens, code, idx, prob, named, addr = got
        wide = prob.dtype != self.prob_dtype
        src = Source(
            keep=None, number=number, player=player, off=off, lens=lens, code=code, index=idx,
            prob=prob.astype(self.prob_dtype) if wide else prob,
            vectors={name: named.get(name) or _absent(len(number), spec) for name, spec in plan.vectors.items()},
            extra={},
        )
        src.addr = addr  # the arrays' addresses for the compiled gathers (the call's)
        if wide:  # float64 probabilities: the converted array's
            addr["prob"] = compiled().address(src.prob)
        if len(named) < len(plan.vectors):  # vectors the file lacks: their zeros'
            source_addresses(src, list(plan.vectors))
        return src

    def stop_prefetch(self) -> None:
        """End of an iteration: stop the read-ahead thread (a new one starts on the next prefetch), drop decoded batches."""
        self._sources.clear()  # an epoch decodes every batch afresh: memory is one window, not the store
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead.clear()
        if self._fetch_pool is not None:
            self._fetch_pool.shutdown(wait=True, cancel_futures=True)
            self._fetch_pool = None
        self._fetching.clear()

    # -- counting (resumption replays without decoding) -------------------------------
    def count(self, plan: Plan, seg: tuple[int, int, int], *, seed: int) -> int:
        """How many positions segment ``seg`` yields (reads only the policy column when filtering)."""
        u, lo, hi = seg
        if not self.policy_only:
            return hi - lo
        rows, _ = plan.unit_rows(u, seed=seed)
        rows = rows[lo:hi]
        sh = self._shard(plan.shards[plan.unit_shard[u]], plan)
        pol = sh.policy_batch(int(plan.unit_batch[u])).column(0)
        return int(np.count_nonzero(_policy_lengths(pol, rows) > 0))

    # -- decoding ------------------------------------------------------------------------
    def read(self, plan: Plan, seg: tuple[int, int, int], *, seed: int) -> Part:
        """The positions of segment ``seg`` (those without a policy dropped when ``policy_only``)."""
        u, lo, hi = seg
        rows, games = plan.unit_rows(u, seed=seed)
        rows, games = rows[lo:hi], games[lo:hi]
        src = self.source(plan, u)
        if self.policy_only:
            keep = src.lens[rows] > 0
            if not keep.all():
                rows, games = rows[keep], games[keep]
        return Part(src, rows, games)

    def source(self, plan: Plan, u: int) -> Source:
        """The decoded columns of unit ``u``'s moves batch (cached: a window reads each batch once)."""
        si, b = int(plan.unit_shard[u]), int(plan.unit_batch[u])
        sid = plan.shards[si]
        key = (sid, b, tuple(plan.vectors))
        src = self._sources.get(key)
        if src is not None:
            self._sources.move_to_end(key)
            return src
        sh = self._shard(sid, plan)
        fut = self._ahead.pop((si, b), None)  # decoded on a read-ahead thread, or here
        got = fut.result() if fut is not None else self._decode(sh, b, plan, self._lookup())
        src = got if isinstance(got, Source) else self._arrow_source(sh, got, plan)
        self._sources[key] = src
        while len(self._sources) > _MAX_SOURCES:
            self._sources.popitem(last=False)
        return src

    def _direct_source(self, sh: _Shard, dec: Decoded, plan: Plan, lookup: np.ndarray) -> Source:
        """A source from a directly decoded batch (:mod:`gamestore.positions.direct`); ``lookup``: :meth:`_lookup`
        taken after ``sh``'s keys were added (this runs on the read-ahead thread: it changes no reader state)."""
        entries = dec.prob.size
        index: np.ndarray | None = None
        kidx = dec.key
        fast = compiled() if dec.action is None else None
        if kidx is not None and fast is not None:  # every entry keyed (RingRift's): one compiled pass, no GIL
            code, index = np.empty(kidx.size, np.int32), np.empty(kidx.size, np.int64)
            bad = fast.key_codes(kidx, sh.key_map, _key_index(sh, lookup), code, index)
            if bad == -2:  # a null entry: the general path below
                index = None
            elif bad >= 0:
                raise ShardCorruptError(f"{MOVES_FILE}: policy key index outside its dictionary", shard_id=sh.shard_id)
        if index is None and kidx is None:
            code = dec.action if dec.action is not None else np.full(entries, -1, np.int32)
        elif index is None and kidx is not None:
            if kidx.size and int(kidx.max()) >= len(sh.key_map):
                raise ShardCorruptError(f"{MOVES_FILE}: policy key index outside its dictionary", shard_id=sh.shard_id)
            if dec.action is None and not (kidx.size and int(kidx.min()) < 0):  # every entry keyed (RingRift's)
                code = sh.key_map[kidx]
                index = _key_index(sh, lookup)[kidx]  # the key's policy index in one gather
            else:
                keyed = sh.key_map[np.maximum(kidx, 0)]
                act = dec.action if dec.action is not None else np.int32(-1)
                code = np.where(kidx >= 0, keyed, act)
        code = np.ascontiguousarray(code, dtype=np.int32)
        prob = dec.prob
        if dec.prob64 is not None:
            valid, p64 = dec.prob64
            prob = np.where(valid, p64.astype(self.prob_dtype), prob)
        if index is None:
            index = _policy_index(code, lookup)
        return Source(
            keep=dec,
            number=dec.number,
            player=dec.player,
            off=dec.off,
            lens=dec.lens,
            code=code,
            index=index,
            prob=np.ascontiguousarray(prob, dtype=self.prob_dtype),
            vectors={name: dec.vectors.get(name) or _absent(dec.rows, spec) for name, spec in plan.vectors.items()},
            extra={},
        )

    def _add_keys(self, sh: _Shard, new: list[Any]) -> None:
        """Extend ``sh``'s dictionary index -> key id map with the dictionary's values ``new`` (in order)."""
        ids = np.empty(len(new), dtype=np.int32)
        for i, k in enumerate(new):
            kid = self._key_ids.get(k)
            if kid is None:
                kid = self._key_ids[k] = len(self.keys)
                self.keys.append(k)
            ids[i] = kid
        sh.key_map = np.concatenate((sh.key_map, -2 - ids))

    def _arrow_source(self, sh: _Shard, rb: pa.RecordBatch, plan: Plan) -> Source:
        every = np.arange(rb.num_rows)
        pol = rb.column("policy")
        code, prob = self._entries(sh, pol)
        index = _policy_index(code, self._lookup())
        vectors = {name: _vector(rb, spec) for name, spec in plan.vectors.items()}
        return Source(
            keep=rb,
            number=rb.column("move_number").to_numpy(),
            player=_int_column(rb.column("player"), every, -1),
            off=np.ascontiguousarray(pol.offsets.to_numpy(), dtype=np.int32),
            lens=_policy_lengths(pol, every),
            code=code,
            index=index,
            prob=prob,
            vectors=vectors,
            extra={name: _any_column(rb.column(name), every) for name in self.extra},
        )

    def _lookup(self) -> np.ndarray:
        """Key table id -> policy index (``action_map``; unmapped keys -1, or UNKNOWN_KEY to report them)."""
        if len(self._key_lookup) < len(self.keys):
            amap = self._action_map
            new = [-1] * (len(self.keys) - len(self._key_lookup)) if amap is None else [
                amap.get(k, self._unknown) for k in self.keys[len(self._key_lookup):]
            ]
            self._key_lookup = np.concatenate((self._key_lookup, np.asarray(new, dtype=np.int64)))
        return self._key_lookup

    def _entries(self, sh: _Shard, pol: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
        """Per policy entry of the batch: its code (action id, ``-2 - key table id``, -1) and probability."""
        values = pol.values
        action = values.field("action")
        key = values.field("key")
        if key.null_count == len(key):  # action ids only
            code = pc.fill_null(action, -1).to_numpy() if action.null_count else action.to_numpy()
        else:
            dictionary = key.dictionary
            if len(sh.key_map) < len(dictionary):
                self._add_keys(sh, dictionary.slice(len(sh.key_map)).to_pylist())
            if key.null_count == 0:  # keys only
                code = sh.key_map[key.indices.to_numpy()]
            else:
                kidx = pc.fill_null(key.indices, -1).to_numpy()
                act = pc.fill_null(action, -1).to_numpy() if action.null_count else action.to_numpy()
                code = np.where(kidx >= 0, sh.key_map[np.maximum(kidx, 0)], act)
        prob = values.field("prob").to_numpy(zero_copy_only=False)
        prob64 = values.field("prob64")
        if prob64.null_count < len(prob64):
            valid = prob64.is_valid().to_numpy(zero_copy_only=False)
            prob = np.where(valid, pc.fill_null(prob64, 0.0).to_numpy().astype(self.prob_dtype), prob)
        code = np.ascontiguousarray(code, dtype=np.int32)
        return code, np.ascontiguousarray(prob, dtype=self.prob_dtype)


def _key_index(sh: _Shard, lookup: np.ndarray) -> np.ndarray:
    """Per entry of ``sh``'s key dictionary its policy index (``lookup`` of its key table id; composed once per shard:
    a shard's keys and their ids never change, and ``lookup`` holds them from the shard's opening on)."""
    got = sh.key_index
    if got is None or got.size != sh.key_map.size:
        got = sh.key_index = lookup[-2 - sh.key_map.astype(np.int64)]
    return got


def _policy_index(code: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Per policy entry its index: the action id, ``lookup`` of the key table id for a key (code <= -2), or -1."""
    index = code.astype(np.int64)
    keyed = index <= -2
    if keyed.any():
        index[keyed] = lookup[-2 - index[keyed]]
    return index


def _policy_lengths(pol: pa.ListArray, rows: np.ndarray) -> np.ndarray:
    offs = pol.offsets.to_numpy()
    lens = (offs[rows + 1] - offs[rows]).astype(np.int32)
    if pol.null_count:
        lens[~pol.is_valid().to_numpy(zero_copy_only=False)[rows]] = 0
    return lens


def _int_column(col: pa.Array, rows: np.ndarray, null: int) -> np.ndarray:
    if col.null_count:
        col = pc.fill_null(col, null)
    return col.to_numpy()[rows]


def _absent(rows: int, spec: VectorSpec) -> tuple[np.ndarray, np.ndarray]:
    """A vector the batch's file does not have: zeros, none valid."""
    return np.zeros((rows, spec.size), dtype=np.float32), np.zeros(rows, dtype=np.uint8)


def _vector(rb: pa.RecordBatch, spec: VectorSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Vector ``spec`` of every row: float32 [rows, size] and validity (uint8 per row, None when all valid)."""
    n, size = rb.num_rows, spec.size
    if spec.column not in rb.schema.names:
        return np.zeros((n, size), dtype=np.float32), np.zeros(n, dtype=np.uint8)
    col = rb.column(spec.column)
    flat = col.values.to_numpy(zero_copy_only=False).reshape(-1, size)[col.offset : col.offset + n]
    valid = col.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8) if col.null_count else None
    return np.ascontiguousarray(flat, dtype=np.float32), valid


def _any_column(col: pa.Array, rows: np.ndarray) -> np.ndarray:
    """A move column as numpy: numbers (nulls -> -1 for ints, NaN for floats), else Python objects."""
    t = col.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        if col.null_count:
            col = pc.fill_null(col, False if pa.types.is_boolean(t) else -1)
        return col.to_numpy(zero_copy_only=False)[rows]
    if pa.types.is_floating(t):
        return col.to_numpy(zero_copy_only=False).astype(np.float64)[rows]
    if pa.types.is_dictionary(t):
        values = np.asarray(col.dictionary.to_pylist() + [None], dtype=object)
        idx = pc.fill_null(col.indices, -1).to_numpy()[rows]
        return values[idx]
    return np.asarray(col.take(pa.array(rows)).to_pylist() + [None], dtype=object)[:-1]
