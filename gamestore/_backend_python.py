"""The pure-Python reference moves backend: moves <-> ``moves.arrow`` columns.

A complete backend, peer of :mod:`gamestore._backend_cython`: ``NAME``,
``encode_moves``, ``decode_moves`` and ``batch_decoder``.  Validates every move
with :func:`gamestore.records.normalize_move`, then fills plain Python lists
column by column.  Slow and simple on purpose: it is the spec, and the compiled
backend (``_ext/_encode.pyx``, ``_ext/_decode.pyx``) must produce equal Arrow tables.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import RecordError, ShardCorruptError
from .records import dump_json, normalize_move
from .schema import (
    KEY_TYPE,
    MOVE_KNOWN_KEYS,
    MOVE_SCALAR_FIELDS,
    POLICY_ENTRY,
    POSITION_FIELDS,
    SEARCH_ENTRY,
    SEARCH_MAPS,
    SEARCH_SCALARS,
    VectorSpec,
    moves_schema,
)

__all__ = ["NAME", "encode_moves", "decode_moves", "batch_decoder", "BatchDecoder", "float32_split", "dictionary_limit"]

NAME = "python"

_SEARCH_MAP_BITS = dict(SEARCH_MAPS)
_SEARCH_SCALAR_KEYS = {k for k, _, _, _, _ in SEARCH_SCALARS}
_SEARCH_STORED = set(_SEARCH_MAP_BITS) | _SEARCH_SCALAR_KEYS


def dictionary_limit(index_type: pa.DataType) -> int:
    """How many distinct values a dictionary with this index type can hold."""
    return 2 ** (index_type.bit_width - 1)


def float32_split(values: Sequence[float]) -> tuple[pa.Array, pa.Array]:
    """``(float32 values, float64 overrides)``: an override is null when the float32 widens back bit-exactly."""
    d = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        f = d.astype(np.float32)
    exact = f.astype(np.float64).view(np.uint64) == d.view(np.uint64)
    # zeros under null slots: the override column then compresses to almost nothing
    return pa.array(f, type=pa.float32()), pa.array(np.where(exact, 0.0, d), type=pa.float64(), mask=exact)


class _Dictionary:
    """Strings coded in order of first appearance."""

    def __init__(self, index_type: pa.DataType) -> None:
        self.codes: dict[str, int] = {}
        self.limit = dictionary_limit(index_type)
        self.index_type = index_type

    def code(self, value: str, *, game_id: object, field: str) -> int:
        code = self.codes.get(value)
        if code is None:
            if len(self.codes) >= self.limit:
                raise RecordError(
                    f"more than {self.limit} distinct values in one batch", game_id=game_id, field=field
                )
            code = self.codes[value] = len(self.codes)
        return code

    def array(self, indices: list) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(
            pa.array(indices, type=self.index_type), pa.array(list(self.codes), type=pa.string())
        )


class _Entries:
    """The struct entries of the ``policy`` or ``search`` list column."""

    def __init__(self, entry_type: pa.StructType, floats: tuple[str, ...], ints: tuple[str, ...]) -> None:
        self.entry_type = entry_type
        self.keys = _Dictionary(KEY_TYPE.index_type)
        self.key_idx: list = []
        self.action: list = []
        self.floats: dict[str, tuple[list[Any], list[bool]]] = {name: ([], []) for name in floats}  # (values, present)
        self.ints: dict[str, list[Any]] = {name: [] for name in ints}
        self.offsets = [0]
        self.valid: list[bool] = []

    def add_candidate(self, cand: Any, *, game_id: object, field: str) -> None:
        if isinstance(cand, str):
            self.key_idx.append(self.keys.code(cand, game_id=game_id, field=field))
            self.action.append(None)
        else:
            self.key_idx.append(None)
            self.action.append(cand)

    def end_row(self, present: bool) -> None:
        self.offsets.append(len(self.key_idx))
        self.valid.append(present)

    def array(self) -> pa.ListArray:
        children = {
            "key": pa.DictionaryArray.from_arrays(
                pa.array(self.key_idx, type=pa.int32()), pa.array(list(self.keys.codes), type=pa.string())
            ),
            "action": pa.array(self.action, type=pa.int32()),
        }
        for name, (values, present) in self.floats.items():
            f32, f64 = float32_split([0.0 if v is None else v for v in values])
            missing = pa.array([not p for p in present], type=pa.bool_())
            children[name] = pc.if_else(missing, pa.scalar(None, pa.float32()), f32)
            children[name + "64"] = pc.if_else(missing, pa.scalar(None, pa.float64()), f64)
        for name, values in self.ints.items():
            children[name] = pa.array(values, type=pa.int32())
        fields = list(self.entry_type)
        values = pa.StructArray.from_arrays([children[f.name] for f in fields], fields=fields)
        mask = pa.array([not v for v in self.valid], type=pa.bool_())
        return pa.ListArray.from_arrays(
            pa.array(self.offsets, type=pa.int32()), values, type=pa.list_(self.entry_type), mask=mask
        )


class _Columns:
    """Column lists of one batch of moves."""

    def __init__(self, vectors: Mapping[str, VectorSpec]) -> None:
        self.vectors = {name: vectors[name] for name in sorted(vectors)}
        self.game_idx: list[int] = []
        self.move_number: list[int] = []
        self.scalars: dict[str, list] = {col: [] for _, col, _, _ in MOVE_SCALAR_FIELDS}
        self.dicts = {
            col: _Dictionary(t.index_type) for _, col, t, _ in MOVE_SCALAR_FIELDS if pa.types.is_dictionary(t)
        }
        self.positions: dict[str, list[Any]] = {f"{p}_{a}": [] for _, p in POSITION_FIELDS for a in "xyz"}
        self.policy = _Entries(POLICY_ENTRY, ("prob",), ())
        self.search = _Entries(SEARCH_ENTRY, ("q", "prior"), ("visits",))
        self.search_flags: list[int] = []
        self.search_scalars: dict[str, list[Any]] = {col: [] for _, col, _, _, _ in SEARCH_SCALARS}
        self.search_extra: list = []
        self.extra: list = []
        self.vec_rows: dict[str, list] = {name: [] for name in self.vectors}

    def add(self, game_index: int, game_id: object, index: int, move: dict) -> None:
        field = f"moves[{index}]"
        self.game_idx.append(game_index)
        self.move_number.append(move["move_number"])
        for key, col, _, _ in MOVE_SCALAR_FIELDS:
            value = move.get(key)
            if value is not None and col in self.dicts:
                value = self.dicts[col].code(value, game_id=game_id, field=f"{field}.{key}")
            self.scalars[col].append(value)
        for key, prefix in POSITION_FIELDS:
            pos = move.get(key)
            for a in "xyz":
                self.positions[f"{prefix}_{a}"].append(None if pos is None else pos[a])
        self._add_policy(move.get("policy"), game_id, f"{field}.policy")
        self._add_search(move.get("search"), game_id, f"{field}.search")
        extra = {k: v for k, v in move.items() if k not in MOVE_KNOWN_KEYS}
        self.extra.append(dump_json(extra) if extra else None)
        vecs = move.get("vectors", {})
        for name, rows in self.vec_rows.items():
            rows.append(vecs.get(name))

    def _add_policy(self, policy: dict | None, game_id: object, field: str) -> None:
        pol = self.policy
        for cand, prob in (policy or {}).items():
            pol.add_candidate(cand, game_id=game_id, field=field)
            pol.floats["prob"][0].append(prob)
            pol.floats["prob"][1].append(True)
        pol.end_row(policy is not None)

    def _add_search(self, search: dict | None, game_id: object, field: str) -> None:
        s = self.search
        flags = 0
        rows: dict[Any, int] = {}  # candidate -> entry index
        if search is not None:
            for key, bit in SEARCH_MAPS:
                entries = search.get(key)
                if entries is None:
                    continue
                flags |= bit
                for cand, value in entries.items():
                    if cand not in rows:
                        rows[cand] = len(s.key_idx)
                        s.add_candidate(cand, game_id=game_id, field=f"{field}.{key}")
                        for vals, present in s.floats.values():
                            vals.append(None)
                            present.append(False)
                        s.ints["visits"].append(None)
                    j = rows[cand]
                    if key == "visit_counts":
                        s.ints["visits"][j] = value
                    else:
                        vals, present = s.floats["q" if key == "q_values" else "prior"]
                        vals[j], present[j] = value, True
        s.end_row(bool(flags))
        for key, col, _, _, bit in SEARCH_SCALARS:
            value = None if search is None else search.get(key)
            if value is not None:
                flags |= bit
            self.search_scalars[col].append(value)
        self.search_flags.append(flags)
        if search is None:
            self.search_extra.append(None)
        else:
            extra = {k: v for k, v in search.items() if k not in _SEARCH_STORED or v is None}
            self.search_extra.append(dump_json(extra))

    def table(self, game_ids: Sequence[str]) -> pa.Table:
        schema = moves_schema(self.vectors)
        cols: dict[str, pa.Array] = {
            "game_id": pa.DictionaryArray.from_arrays(
                pa.array(self.game_idx, type=pa.int32()), pa.array(list(game_ids), type=pa.string())
            ),
            "move_number": pa.array(self.move_number, type=pa.int32()),
        }
        for _, col, atype, _ in MOVE_SCALAR_FIELDS:
            if col in self.dicts:
                cols[col] = self.dicts[col].array(self.scalars[col])
            else:
                cols[col] = pa.array(self.scalars[col], type=atype)
        for col, values in self.positions.items():
            cols[col] = pa.array(values, type=pa.int16())
        cols["policy"] = self.policy.array()
        cols["search"] = self.search.array()
        cols["search_flags"] = pa.array(self.search_flags, type=pa.uint8())
        for _, col, atype, _, _ in SEARCH_SCALARS:
            cols[col] = pa.array(self.search_scalars[col], type=atype)
        cols["search_extra_json"] = pa.array(self.search_extra, type=pa.string())
        cols["extra_json"] = pa.array(self.extra, type=pa.string())
        for name, spec in self.vectors.items():
            rows = self.vec_rows[name]
            flat = np.zeros((len(rows), spec.size), dtype=spec.numpy_dtype)
            for i, arr in enumerate(rows):
                if arr is not None:
                    flat[i] = arr.reshape(-1)
            mask = pa.array([arr is None for arr in rows], type=pa.bool_())
            cols[spec.column] = pa.FixedSizeListArray.from_arrays(
                pa.array(flat.reshape(-1)), type=schema.field(spec.column).type, mask=mask
            )
        return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def encode_moves(
    game_ids: Sequence[str], games_moves: Sequence[Sequence[Any]], vectors: Mapping[str, VectorSpec]
) -> tuple[pa.Table, list[int]]:
    """Validate and encode the moves of each game; returns the moves table and the move count per game."""
    cols = _Columns(vectors)
    counts = []
    for gi, (game_id, moves) in enumerate(zip(game_ids, games_moves)):
        if moves is None:
            moves = []
        if not isinstance(moves, (list, tuple)):
            raise RecordError("moves must be a list", game_id=game_id, field="moves")
        prev = None
        for i, move in enumerate(moves):
            norm = normalize_move(move, i, game_id=game_id, vectors=vectors, previous_number=prev)
            prev = norm["move_number"]
            cols.add(gi, game_id, i, norm)
        counts.append(len(moves))
    return cols.table(game_ids), counts


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------
def _cand(entry: Mapping) -> Any:
    return entry["key"] if entry["key"] is not None else entry["action"]


def _exact(entry: Mapping, name: str) -> float:
    wide = entry[name + "64"]
    return wide if wide is not None else float(entry[name])


def _validated(moves: pa.Table | pa.RecordBatch) -> None:
    """Arrow's full validation (offsets, dictionary indices, UTF-8): what the compiled decoder checks as it reads."""
    try:
        moves.validate(full=True)
    except pa.ArrowException as exc:
        raise ShardCorruptError(f"damaged moves batch: {exc}") from None


def decode_moves(moves: pa.Table | pa.RecordBatch, vectors: Mapping[str, VectorSpec]) -> list[dict]:
    """Canonical move dicts of every row of ``moves``; a damaged batch is a :class:`ShardCorruptError`."""
    _validated(moves)
    return _decode_rows(moves, vectors)


def _decode_rows(moves: pa.Table | pa.RecordBatch, vectors: Mapping[str, VectorSpec]) -> list[dict]:
    try:
        return _decode_valid(moves, vectors)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSON texts that are not JSON objects
        raise ShardCorruptError(f"damaged moves batch: {type(exc).__name__}: {exc}") from None


def _decode_valid(moves: pa.Table | pa.RecordBatch, vectors: Mapping[str, VectorSpec]) -> list[dict]:
    out = []
    for row in moves.to_pylist():
        m: dict[str, Any] = {"move_number": row["move_number"]}
        for key, col, _, _ in MOVE_SCALAR_FIELDS:
            if row[col] is not None:
                m[key] = row[col]
        for key, prefix in POSITION_FIELDS:
            if row[f"{prefix}_x"] is not None:
                m[key] = {"x": row[f"{prefix}_x"], "y": row[f"{prefix}_y"], "z": row[f"{prefix}_z"]}
        if row["policy"] is not None:
            m["policy"] = {_cand(e): _exact(e, "prob") for e in row["policy"]}
        if row["search_extra_json"] is not None:
            search = json.loads(row["search_extra_json"])
            flags = row["search_flags"]
            entries = row["search"] or []
            if flags & _SEARCH_MAP_BITS["q_values"]:
                search["q_values"] = {_cand(e): _exact(e, "q") for e in entries if e["q"] is not None}
            if flags & _SEARCH_MAP_BITS["visit_counts"]:
                search["visit_counts"] = {_cand(e): e["visits"] for e in entries if e["visits"] is not None}
            if flags & _SEARCH_MAP_BITS["prior_policy"]:
                search["prior_policy"] = {_cand(e): _exact(e, "prior") for e in entries if e["prior"] is not None}
            for key, col, _, _, bit in SEARCH_SCALARS:
                if flags & bit:
                    search[key] = row[col]
            m["search"] = search
        vecs = {}
        for name, spec in vectors.items():
            value = row.get(spec.column)
            if value is not None:
                vecs[name] = np.array(value, dtype=spec.numpy_dtype).reshape(spec.shape)
        if vecs:
            m["vectors"] = vecs
        if row["extra_json"] is not None:
            m.update(json.loads(row["extra_json"]))
        out.append(m)
    return out


class BatchDecoder:
    """Move dicts of any row range of one moves record batch (decodes a slice of the batch)."""

    def __init__(self, batch: pa.RecordBatch, vectors: Mapping[str, VectorSpec], strings: dict | None = None) -> None:
        _validated(batch)
        self._batch = batch
        self._vectors = dict(vectors)
        self.num_rows = batch.num_rows

    def decode(self, start: int, stop: int) -> list[dict]:
        """The move dicts of rows ``[start, stop)``; ``IndexError`` outside the batch."""
        if start < 0 or stop > self.num_rows or start > stop:
            raise IndexError(f"rows [{start}, {stop}) outside the batch of {self.num_rows}")
        return _decode_rows(self._batch.slice(start, stop - start), self._vectors)


def batch_decoder(
    batch: pa.RecordBatch, vectors: Mapping[str, VectorSpec], strings: dict | None = None
) -> BatchDecoder:
    """Decodes any row range of ``batch`` (``strings`` is accepted for the interface; unused here)."""
    return BatchDecoder(batch, vectors, strings)
