"""Moves batches decoded for PositionDataset straight from the IPC file, without Arrow arrays.

Arrow's IPC reader decompresses every buffer of the selected columns with a
fresh zstd context, allocates each from its pool and builds arrays that the
dataset then turns into numpy again.  A :class:`DirectDecoder` reads the
file's record batch messages once (:meth:`FastBatchReader.layouts`), and per
batch decompresses only the body buffers a dataset uses, in one call without
the GIL (a reused zstd context; compiled, libzstd straight into a reused
buffer of a :class:`BufferPool`), skipping the values of all-null children
(``action`` where policies are keyed, ``prob64`` where float32 is exact), and
views them as numpy arrays: move number, player, the policy's list offsets,
keys, actions and probabilities, and the vectors' rows.  Reading a batch
and making its source takes 0.23 us of CPU per position against 0.50 through
Arrow's reader (RingRift batches of ~820 positions, 0.17 of it zstd; corpus
of ``benchmarks/bench_torch_ringrift.py``).

It handles what gamestore writes: a batch whose layout it does not expect
(nulls where the writer puts none, columns of another type) is
:class:`~gamestore.ipc_messages.Unsupported`, and the caller reads it with
Arrow's reader; a batch whose bytes are inconsistent is
:class:`~gamestore.ipc_messages.Damaged`.
"""
from __future__ import annotations

import struct
import sys
import threading
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import zstandard as _zstd

from ..ipc_batch import FastBatchReader, field_spans, field_starts
from ..ipc_messages import Damaged, Unsupported
from ..schema import VectorSpec

__all__ = ["DirectDecoder", "Decoded", "BufferPool", "KeyOutside"]

_I64 = struct.Struct("<q")
_POLICY = pa.list_(pa.struct([("key", pa.dictionary(pa.int32(), pa.string())), ("action", pa.int32()),
                              ("prob", pa.float32()), ("prob64", pa.float64())]))


class Decoded:
    """One moves batch's columns as numpy (see :class:`DirectDecoder`); ``keep`` holds the decompressed bytes."""

    __slots__ = ("rows", "number", "player", "off", "lens", "key", "action", "prob", "prob64", "vectors", "keep")

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.number: np.ndarray
        self.player: np.ndarray  # int64, -1 where null
        self.off: np.ndarray  # int32 [rows + 1]
        self.lens: np.ndarray  # int32 [rows], 0 for a null policy
        self.key: np.ndarray | None  # int32 dictionary index per entry, -1 where null; None: no keys in the batch
        self.action: np.ndarray | None  # int32 per entry, -1 where null; None: no actions in the batch
        self.prob: np.ndarray  # float32 per entry
        self.prob64: tuple[np.ndarray, np.ndarray] | None  # (valid bool, float64) per entry where any is set
        self.vectors: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # name -> (float32 rows, valid or None)
        self.keep: list[Any] = []


def _bits(raw: np.ndarray, n: int) -> np.ndarray:
    """A little-endian validity bitmap (its bytes, checked long enough by the recipe) as ``n`` bools."""
    return np.unpackbits(raw, count=n, bitorder="little").view(bool)


_INT8, _UINT8, _INT32, _FLOAT32 = np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int32), np.dtype(np.float32)
_CHILDREN: tuple[np.dtype, ...] = (_INT32, _INT32, _FLOAT32, np.dtype(np.float64))  # the policy entries' key, action, prob, prob64


class DirectDecoder:
    """Decodes the columns a PositionDataset reads from one moves file (see the module docstring)."""

    def __init__(self, fast: FastBatchReader) -> None:
        schema = fast.schema
        names = schema.names
        for name, t in (("move_number", pa.int32()), ("player", pa.int8()), ("policy", _POLICY)):
            if name not in names or schema.field(name).type != t:
                raise Unsupported(f"column {name!r} is not what this decoder reads")
        self.fast = fast
        self.view = fast.view  # the file's bytes (the same memory for the reader's life)
        self.layouts = fast.layouts(range(len(fast._blocks)))
        starts = field_starts(schema)
        self._starts = starts
        self._at = {name: starts[names.index(name)][:2] for name in ("move_number", "player", "policy")}
        self._vectors: dict[VectorSpec, tuple[int, int, int] | None] = {}
        self._recipes: dict[tuple, _Recipe] = {}
        self.policy_column = names.index("policy")
        nodes = self.layouts.nodes
        if nodes.ndim != 3 or nodes.shape[1] != sum(field_spans(f.type)[0] for f in schema):
            raise Unsupported("message layout differs from the schema")

    def _vector_at(self, spec: VectorSpec) -> tuple[int, int, int] | None:
        """(field node, first body buffer, row size) of vector ``spec``'s column; None when the file lacks it."""
        if spec not in self._vectors:
            schema = self.fast.schema
            if spec.column not in schema.names:
                self._vectors[spec] = None
            else:
                t = schema.field(spec.column).type
                if not (pa.types.is_fixed_size_list(t) and t.value_type == pa.float32() and t.list_size == spec.size):
                    raise Unsupported(f"vector column {spec.column!r} is {t}")
                node, buf = self._starts[schema.names.index(spec.column)][:2]
                self._vectors[spec] = (node, buf, spec.size)
        return self._vectors[spec]

    def key_dictionary(self) -> list[Any]:
        """The policy keys' dictionary (the file's, complete: IPC files replace no dictionary)."""
        got = self.fast.column_dictionaries(self.policy_column)
        if len(got) != 1:
            raise Unsupported("policy column without exactly one dictionary")
        return got[0].to_pylist()

    def _recipe(self, index: int, vectors: dict[str, VectorSpec]) -> "_Recipe":
        """What batch ``index`` needs decompressed and how its columns lie (kept per batch: a file's layout never
        changes, and an epoch reads each batch once)."""
        key = (index, tuple(vectors.items()))
        got = self._recipes.get(key)
        if got is not None:
            return got
        L = self.layouts
        rows = int(L.rows[index])
        nodes = L.nodes[index].tolist()
        mn, mb = self._at["move_number"]
        pn, pb = self._at["player"]
        qn, qb = self._at["policy"]
        # policy: list (validity, offsets), struct (validity), key (validity, indices), action, prob, prob64
        entries = nodes[qn + 1][0]
        if nodes[mn][1] or nodes[qn + 1][1] or nodes[mn][0] != rows or nodes[pn][0] != rows or nodes[qn][0] != rows:
            raise Unsupported("nulls or lengths where gamestore writes none")
        null = [nodes[qn + 2 + c][1] for c in range(4)]  # key, action, prob, prob64
        if null[2] or any(nodes[qn + 2 + c][0] != entries for c in range(4)):
            raise Unsupported("policy entries differ from what gamestore writes")
        want = [mb + 1, pb, pb + 1, qb, qb + 1]
        for c in range(4):
            if null[c] < entries:  # a child's values only when some entry has one
                want += [qb + 3 + 2 * c, qb + 4 + 2 * c]
        vecs: list[tuple[str, int, int, bool]] = []
        for name, spec in vectors.items():
            where = self._vector_at(spec)
            if where is None:
                continue
            vn, vb, size = where
            if nodes[vn + 1][1] or nodes[vn][0] != rows or nodes[vn + 1][0] != rows * size:
                raise Unsupported(f"vector column {spec.column!r} with null items")
            vecs.append((name, vb, size, bool(nodes[vn][1])))
            want += [vb, vb + 2]
        body = int(L.body[index])
        spans = [(k, body + int(L.bufs[index, k, 0]), int(L.bufs[index, k, 1])) for k in want]
        view = self.fast.view
        if any(size and (size < 8 or pos < 0 or pos + size > len(view)) for _, pos, size in spans):
            raise Damaged("body buffers outside the file")
        packed, stored = [], []
        for k, pos, size in spans:
            if size:
                raw = _I64.unpack_from(view, pos)[0]
                if raw > 0:
                    packed.append((k, pos + 8, size - 8, raw))
                elif raw == -1:
                    stored.append((k, pos + 8, size - 8))
                elif raw < -1:
                    raise Damaged("a body buffer's size prefix is out of range")
        segments = np.asarray([(p, n) for _, p, n, _ in packed], dtype="<u8").reshape(-1, 2).tobytes()
        sizes = np.asarray([r for *_, r in packed], dtype="<u8").tobytes()
        # the compiled path: every buffer at a 64-byte aligned place of one reused output buffer
        frames, places, at = [], [], 0
        for k, pos, size, raw in packed + [(k, pos, size, -1) for k, pos, size in stored]:
            frames.append((pos, size, raw, at))
            n = size if raw == -1 else raw
            places.append((k, at, n))
            at += -(-n // 64) * 64
        player_nulls, list_nulls = bool(nodes[pn][1]), bool(nodes[qn][1])
        # each column the batch's arrays view: (name, body buffer, dtype, shape, bitmap of n bools or not); the
        # decompressed sizes are known here (a prefix's, checked when decompressing), so are the length checks
        cols: list[tuple[str, int, np.dtype, tuple[int, ...], bool]] = [
            ("number", mb + 1, _INT32, (rows,), False), ("player", pb + 1, _INT8, (rows,), False),
            ("off", qb + 1, _INT32, (rows + 1,), False)]
        if player_nulls:
            cols.append(("player_valid", pb, _UINT8, (rows,), True))
        if list_nulls:
            cols.append(("list_valid", qb, _UINT8, (rows,), True))
        for c, dtype in enumerate(_CHILDREN):
            if null[c] != entries:
                cols.append((f"c{c}", qb + 4 + 2 * c, dtype, (entries,), False))
                if null[c]:
                    cols.append((f"c{c}_valid", qb + 3 + 2 * c, _UINT8, (entries,), True))
        for name, vb, size, nulls in vecs:
            cols.append((f"v_{name}", vb + 2, _FLOAT32, (rows, size), False))
            if nulls:
                cols.append((f"v_{name}_valid", vb, _UINT8, (rows,), True))
        sized = {k: n for k, _, n in places}
        names, formats, offsets, reads = [], [], [], []
        for name, k, dtype, shape, bitmap in cols:
            n = int(np.prod(shape))
            have = sized.get(k)
            if bitmap:
                if have is None:
                    raise Damaged("validity bitmap missing")
                if have * 8 < n:
                    raise Damaged("validity bitmap shorter than its array")
                shape = (-(-n // 8),)  # the bytes np.unpackbits reads
            elif have is None:
                if n:
                    raise Damaged("values buffer missing")
            elif have < n * dtype.itemsize:
                raise Damaged("values buffer shorter than its array")
            names.append(name)
            formats.append((dtype, shape))
            offsets.append(0 if have is None else next(a for b, a, _ in places if b == k))
            reads.append((name, k, dtype, n, shape if not bitmap else None))
        got = self._recipes[key] = _Recipe(
            rows=rows, entries=entries, player_nulls=player_nulls, list_nulls=list_nulls, null=null,
            vecs=vecs, packed=[(k, r) for k, _, _, r in packed], stored=stored,
            segments=segments, sizes=sizes, frames=np.asarray(frames, dtype=np.int64).reshape(-1, 4), places=places,
            total=at, layout=np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": max(at, 1)}),
            reads=reads, spec=_source_spec(rows, entries, null, vecs, dict(zip(names, offsets)), at),
            addr_names=("number", "player", "lens", "off", "index", "prob",
                        *(f"{k}_{name}" for name, *_ in vecs for k in ("vec", "valid"))),
        )
        return got

    def source_columns(self, index: int, vectors: dict[str, VectorSpec], pool: "BufferPool", key_map: np.ndarray,
                       key_index: np.ndarray) -> tuple | None:
        """Compiled only: what :meth:`read` and ``SegmentReader._direct_source`` make of batch ``index`` (its source's
        arrays: ``(number, player, off, lens, code, index, prob, vectors, addresses)``, see
        ``_positions.direct_source``; ``vectors`` by name, those the file has; ``addresses`` for ``Source.addr``), in one
        call without the GIL; None when the compiled module is not selected or the batch holds action ids or
        float64 probabilities (then :meth:`read`).  :class:`Damaged` as :meth:`read`; :class:`KeyOutside` when a key's
        dictionary index is outside ``key_map``."""
        r = self._recipe(index, vectors)
        if r.spec is None:
            return None
        fast = _unpacker()
        if fast is None:
            return None
        dctx = _compiled_dctx(fast)
        # a free buffer of the pool taken inside the call (the pool's scan, atomic under the GIL), else a new one
        got = fast.direct_source(self.view, r.frames, pool._bufs, dctx, r.spec, key_map, key_index, r.addr_names)
        if got == -4:
            got = fast.direct_source(self.view, r.frames, pool.take(r.total), dctx, r.spec, key_map, key_index,
                                     r.addr_names)
        if type(got) is tuple:  # the vectors by name
            return got[:7] + ({name: pair for (name, *_), pair in zip(r.vecs, got[7])}, got[8])
        if got >= 0:
            raise Damaged(f"buffer {r.places[got][0]} does not decompress to the size its prefix says")
        if got == -2:
            raise Damaged("policy list offsets out of order or outside the entries")
        raise KeyOutside("policy key index outside its dictionary")

    def _columns(self, r: "_Recipe", pool: "BufferPool | None", fast: Any) -> tuple[dict[str, np.ndarray], list[Any]]:
        """The batch's columns (``r.reads``' names -> arrays; bitmaps as their bytes) and what holds their memory:
        compiled (``fast``), one zstd call without the GIL into a buffer of ``pool`` and every column a field of one
        structured view of it (``r.layout``); else zstandard's (fresh memory per batch) and a view per column."""
        view = self.fast.view
        if fast is not None:
            buf = pool.take(r.total)  # type: ignore[union-attr]
            bad = fast.unpack(view, r.frames, buf, _compiled_dctx(fast))
            if bad >= 0:
                raise Damaged(f"buffer {r.places[bad][0]} does not decompress to the size its prefix says")
            whole = np.ndarray((), r.layout, buffer=buf)
            return {name: whole[name] for name in r.layout.names or ()}, [buf]
        out: dict[int, Any] = {}
        if r.packed:
            frames = _zstd.BufferWithSegments(view, r.segments)
            try:
                got = _dctx().multi_decompress_to_buffer(frames, decompressed_sizes=r.sizes, threads=1)
            except _zstd.ZstdError as exc:
                raise Damaged(f"{type(exc).__name__}: {exc}") from exc
            finally:
                del frames
            for j, (k, raw) in enumerate(r.packed):
                seg = got[j]
                if len(seg) != raw:
                    raise Damaged(f"buffer {k} decompresses to {len(seg)} bytes, its prefix says {raw}")
                out[k] = seg
        for k, pos, size in r.stored:
            out[k] = bytes(view[pos : pos + size])
        cols: dict[str, np.ndarray] = {}
        for name, k, dtype, n, shape in r.reads:
            b = out.get(k)
            if shape is None:  # a bitmap (the recipe checked it is there): its bytes
                cols[name] = np.frombuffer(out[k], dtype=np.uint8)
            elif b is None:
                cols[name] = np.zeros(shape, dtype)
            else:
                cols[name] = np.frombuffer(b, dtype=dtype, count=n).reshape(shape)
        return cols, list(out.values())

    def read(self, index: int, vectors: dict[str, VectorSpec], pool: "BufferPool | None" = None) -> Decoded:
        """Batch ``index``'s columns and ``vectors`` (name -> spec) (:class:`Damaged` when its bytes are
        inconsistent); ``pool``: where the decompressed buffers go (see :class:`BufferPool`)."""
        r = self._recipe(index, vectors)
        rows, entries, null = r.rows, r.entries, r.null
        fast = _unpacker() if pool is not None else None
        cols, keep = self._columns(r, pool, fast)
        out = Decoded(rows)
        out.keep = keep
        out.number = cols["number"]
        off = out.off = cols["off"]
        if fast is not None:  # the same in one compiled pass
            got = fast.moves_rows(cols["player"], cols.get("player_valid"), off, cols.get("list_valid"), entries)
            if got is None:
                raise Damaged("policy list offsets out of order or outside the entries")
            out.player, out.lens = got
        else:
            player = cols["player"].astype(np.int64)
            if r.player_nulls:
                player[~_bits(cols["player_valid"], rows)] = -1
            out.player = player
            lens = off[1:] - off[:-1]  # int32
            if rows and (off[0] < 0 or off[-1] > entries or int(lens.min()) < 0):
                raise Damaged("policy list offsets out of order or outside the entries")
            if r.list_nulls:
                lens[~_bits(cols["list_valid"], rows)] = 0
            out.lens = lens
        children: list[tuple[np.ndarray, np.ndarray | None] | None] = []
        for c in range(4):
            if null[c] == entries:
                children.append(None)
            else:
                children.append((cols[f"c{c}"], _bits(cols[f"c{c}_valid"], entries) if null[c] else None))
        for c, name in ((0, "key"), (1, "action")):
            child = children[c]
            if child is None:
                setattr(out, name, None)
            else:
                vals, valid = child
                setattr(out, name, vals if valid is None else np.where(valid, vals, -1).astype(np.int32))
        prob = children[2]
        assert prob is not None
        out.prob = prob[0]
        p64 = children[3]
        out.prob64 = None if p64 is None else (p64[1] if p64[1] is not None else np.ones(entries, bool), p64[0])
        for name, _, _, nulls in r.vecs:
            out.vectors[name] = (cols[f"v_{name}"],
                                 _bits(cols[f"v_{name}_valid"], rows).astype(np.uint8) if nulls else None)
        return out


class _Recipe(NamedTuple):
    rows: int
    entries: int
    player_nulls: bool
    list_nulls: bool
    null: list[int]  # null count of the policy's key, action, prob, prob64
    vecs: list[tuple[str, int, int, bool]]  # name, first body buffer, row size, has nulls
    packed: list[tuple[int, int]]  # compressed buffers (number, decompressed size), in ``segments`` order
    stored: list[tuple[int, int, int]]  # buffers stored uncompressed (number, file position, size)
    segments: bytes  # (file position, size) of each compressed frame, for zstandard's BufferWithSegments
    sizes: bytes  # their decompressed sizes
    frames: np.ndarray  # int64 [buffers, 4]: (file position, size, decompressed size or -1, place), compiled path
    places: list[tuple[int, int, int]]  # per row of ``frames``: (buffer number, place, decompressed size)
    total: int  # bytes the compiled path's output needs
    layout: np.dtype  # the compiled path's output as one structured view: a field per column (``reads``' names)
    reads: list[tuple[str, int, np.dtype, int, tuple[int, ...] | None]]  # (name, body buffer, dtype, items, shape
    # or None for a validity bitmap: its bytes)
    spec: np.ndarray | None  # int64, where the compiled direct_source finds the columns; None: a layout it does not take
    addr_names: tuple[str, ...]  # the names of the arrays' addresses direct_source returns (gather.source_addresses')


class KeyOutside(Damaged):
    """A policy entry's key outside the file's dictionary."""


def _source_spec(rows: int, entries: int, null: list[int], vecs: list[tuple[str, int, int, bool]],
                 at: dict[str, int], total: int) -> np.ndarray | None:
    """``_positions.direct_source``'s spec of a batch (byte places of its columns in the output buffer, -1 for none),
    or None when some entry has an action id or a float64 probability (the compiled call takes keys only)."""
    if null[1] != entries or null[3] != entries:
        return None
    keyed = null[0] != entries
    spec = [rows, entries, at["number"], at["player"], at.get("player_valid", -1), at["off"], at.get("list_valid", -1),
            at["c0"] if keyed else -1, at.get("c0_valid", -1) if keyed else -1, at.get("c2", 0), len(vecs), total]
    for name, _, size, nulls in vecs:
        spec += [at[f"v_{name}"], size, at[f"v_{name}_valid"] if nulls else -1]
    return np.asarray(spec, dtype=np.int64)


class BufferPool:
    """Output buffers of the compiled decompression, reused once no array views them.

    A decoded batch's columns are numpy views of its buffer, alive while its
    source is (a window and the read-ahead: tens of batches).  Fresh memory
    for every batch cost a read-ahead thread ~45 page faults per ~820-position
    batch (malloc gives a helper thread's freed memory back to the system), a
    third of its decoding CPU; a buffer whose only reference is the pool's is
    taken again instead.  Shared by the read-ahead threads of one reader.
    """

    def __init__(self, keep: int = 128) -> None:
        self._bufs: list[np.ndarray] = []
        self._keep = keep  # buffers kept (free or not): past it, free ones are dropped
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        """A uint8 buffer of at least ``size`` bytes nothing else references (the smallest free one, or a new one)."""
        from .gather import compiled

        mod = compiled()
        scan = getattr(mod, "free_buffer", None)
        with self._lock:
            best: np.ndarray | None = None
            if scan is not None:  # the same scan in one compiled call (~0.2 against ~5 us over 128 buffers)
                best = scan(self._bufs, size)
            else:
                for a in self._bufs:
                    # references: the list, ``a`` and getrefcount's argument; any view of it holds one more
                    if a.size >= size and sys.getrefcount(a) == 3 and (best is None or a.size < best.size):
                        best = a
            if best is not None:
                return best
            buf = np.empty(-(-max(size, 1) * 5 // 4 // 4096) * 4096, dtype=np.uint8)  # room for larger batches
            self._bufs.append(buf)
            if len(self._bufs) > self._keep:
                self._bufs = [a for a in self._bufs if a is buf or sys.getrefcount(a) > 3]  # (the comprehension's ``a``)
            return buf


def _unpacker() -> Any:
    """The compiled :func:`unpack` module with libzstd installed, or None (zstandard's Python API instead)."""
    global _UNPACK
    if _UNPACK is False:
        from .gather import compiled
        from ..zstdlib import FUNCTIONS, addresses

        mod = compiled()
        if mod is None:
            return None  # the pure-Python backend selected now (not cached: a later call may select the compiled one)
        got = addresses() if hasattr(mod, "unpack") else None
        if got is None:
            _UNPACK = None
        else:
            mod.set_zstd(*got[: len(FUNCTIONS)])
            _UNPACK = mod
    return _UNPACK


_UNPACK: Any = False  # not looked up yet


def _compiled_dctx(mod: Any) -> Any:
    """This thread's libzstd context for the compiled path."""
    d = getattr(_local, "cdctx", None)
    if d is None:
        d = _local.cdctx = mod.Decompressor()
    return d


_local = threading.local()


def _dctx() -> Any:
    """This thread's zstd decompressor (a reused context)."""
    d = getattr(_local, "dctx", None)
    if d is None:
        d = _local.dctx = _zstd.ZstdDecompressor()
    return d
