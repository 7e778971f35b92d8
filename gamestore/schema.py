"""The Arrow schemas of shard files (format version 1), in one place.

Every column name, Arrow type and metadata key of the on-disk format is
defined here; ``docs/format.md`` explains them.  Both encoder backends build
exactly these schemas, and readers rely on nothing else.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

FORMAT_VERSION = 5
#: Format versions this reader reads (docs/format.md): 1 has no per-batch checksums, 2 no per-column ones, 3 no
#: buffers stored uncompressed, 4 its categorical columns' dictionary indices compressed.
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4, 5)

# --------------------------------------------------------------------------
# Game-level scalar fields: (name, arrow type, kind).  kind is one of
# "str", "int", "float"; the record key and the column name are the same.
# --------------------------------------------------------------------------
GAME_SCALAR_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("game_id", pa.string(), "str"),
    ("board_type", pa.string(), "str"),
    ("num_players", pa.int8(), "int"),
    ("winner", pa.int8(), "int"),
    ("termination_reason", pa.string(), "str"),
    ("game_status", pa.string(), "str"),
    ("source", pa.string(), "str"),
    ("engine_mode", pa.string(), "str"),
    ("opponent_type", pa.string(), "str"),
    ("opponent_model_id", pa.string(), "str"),
    ("model_version", pa.string(), "str"),
    ("rng_seed", pa.int64(), "int"),
    ("created_at", pa.string(), "str"),
    ("completed_at", pa.string(), "str"),
    ("duration_ms", pa.int64(), "int"),
    ("total_moves", pa.int32(), "int"),
    ("total_turns", pa.int32(), "int"),
    ("quality_score", pa.float64(), "float"),
    ("quality_category", pa.string(), "str"),
    ("time_control_type", pa.string(), "str"),
    ("initial_time_ms", pa.int64(), "int"),
    ("time_increment_ms", pa.int64(), "int"),
)

PLAYER_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("player_number", pa.int8(), "int"),
    ("player_type", pa.string(), "str"),
    ("ai_type", pa.string(), "str"),
    ("ai_difficulty", pa.int32(), "int"),
    ("ai_profile_id", pa.string(), "str"),
    ("final_eliminated_rings", pa.int32(), "int"),
    ("final_territory_spaces", pa.int32(), "int"),
    ("final_rings_in_hand", pa.int32(), "int"),
    ("final_score", pa.float64(), "float"),
)

PLAYER_TYPE = pa.struct(
    [pa.field(n, t) for n, t, _ in PLAYER_FIELDS] + [pa.field("extra_json", pa.string())]
)

SNAPSHOT_TYPE = pa.struct(
    [
        pa.field("move_number", pa.int32()),
        pa.field("state_json", pa.large_string()),
        pa.field("state_hash", pa.string()),
        pa.field("extra_json", pa.string()),
    ]
)

#: Record keys of a game that are not scalar columns but are stored
#: structurally; anything else unknown goes to ``extra_json``.
GAME_STRUCTURED_KEYS = frozenset({"players", "metadata", "initial_state", "snapshots", "moves"})

GAMES_SCHEMA = pa.schema(
    [pa.field(n, t) for n, t, _ in GAME_SCALAR_FIELDS]
    + [
        pa.field("players", pa.list_(PLAYER_TYPE)),
        pa.field("metadata_json", pa.string()),
        pa.field("initial_state_json", pa.large_string()),
        pa.field("initial_state_blob", pa.large_binary()),
        pa.field("snapshots", pa.list_(SNAPSHOT_TYPE)),
        pa.field("extra_json", pa.string()),
        # where the game's moves live in this shard's moves file
        pa.field("move_offset", pa.int64(), nullable=False),
        pa.field("move_count", pa.int32(), nullable=False),
    ]
)

# --------------------------------------------------------------------------
# Moves
# --------------------------------------------------------------------------
#: Typed move fields: (record key, column, arrow type, kind).  Positions are
#: handled separately (three int16 columns each).
MOVE_SCALAR_FIELDS: tuple[tuple[str, str, pa.DataType, str], ...] = (
    ("turn_number", "turn_number", pa.int32(), "int"),
    ("player", "player", pa.int8(), "int"),
    ("phase", "phase", pa.dictionary(pa.int16(), pa.string()), "str"),
    ("move_type", "move_type", pa.dictionary(pa.int16(), pa.string()), "str"),
    ("move_id", "move_id", pa.dictionary(pa.int32(), pa.string()), "str"),
    ("placement_count", "placement_count", pa.int16(), "int"),
    ("timestamp", "timestamp", pa.string(), "str"),
    ("think_time_ms", "think_time_ms", pa.int32(), "int"),
    ("time_remaining_ms", "time_remaining_ms", pa.int64(), "int"),
    ("engine_eval", "engine_eval", pa.float64(), "float"),
    ("engine_eval_type", "engine_eval_type", pa.dictionary(pa.int16(), pa.string()), "str"),
    ("engine_depth", "engine_depth", pa.int32(), "int"),
    ("engine_nodes", "engine_nodes", pa.int64(), "int"),
    ("engine_pv", "engine_pv", pa.string(), "str"),
    ("engine_time_ms", "engine_time_ms", pa.int64(), "int"),
)

#: Position record keys and their column prefixes.
POSITION_FIELDS: tuple[tuple[str, str], ...] = (
    ("from", "from"),
    ("to", "to"),
    ("capture_target", "capture"),
)

KEY_TYPE = pa.dictionary(pa.int32(), pa.string())

POLICY_ENTRY = pa.struct(
    [
        pa.field("key", KEY_TYPE),
        pa.field("action", pa.int32()),
        pa.field("prob", pa.float32()),
        pa.field("prob64", pa.float64()),
    ]
)

SEARCH_ENTRY = pa.struct(
    [
        pa.field("key", KEY_TYPE),
        pa.field("action", pa.int32()),
        pa.field("q", pa.float32()),
        pa.field("q64", pa.float64()),
        pa.field("visits", pa.int32()),
        pa.field("prior", pa.float32()),
        pa.field("prior64", pa.float64()),
    ]
)

#: The per-candidate maps of a search-statistics record, and their bit in
#: ``search_flags`` (set when the map is present in the record).
SEARCH_MAPS: tuple[tuple[str, int], ...] = (
    ("q_values", 1 << 0),
    ("visit_counts", 1 << 1),
    ("prior_policy", 1 << 2),
)
#: Scalar search statistics: (record key, column, arrow type, kind, flag bit).
SEARCH_SCALARS: tuple[tuple[str, str, pa.DataType, str, int], ...] = (
    ("root_value", "search_root_value", pa.float64(), "float", 1 << 3),
    ("search_depth", "search_depth", pa.int32(), "int", 1 << 4),
    ("uncertainty", "search_uncertainty", pa.float64(), "float", 1 << 5),
    ("nodes_explored", "search_nodes_explored", pa.int64(), "int", 1 << 6),
    ("total_simulations", "search_total_simulations", pa.int64(), "int", 1 << 7),
)

#: Keys of a move record with a typed home; anything else goes to ``extra_json``.
MOVE_KNOWN_KEYS = frozenset(
    {"move_number", "policy", "search", "vectors"}
    | {k for k, _, _, _ in MOVE_SCALAR_FIELDS}
    | {k for k, _ in POSITION_FIELDS}
)

BASE_MOVES_SCHEMA = pa.schema(
    [
        pa.field("game_id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("move_number", pa.int32(), nullable=False),
    ]
    + [pa.field(c, t) for _, c, t, _ in MOVE_SCALAR_FIELDS]
    + [pa.field(f"{p}_{a}", pa.int16()) for _, p in POSITION_FIELDS for a in "xyz"]
    + [
        pa.field("policy", pa.list_(POLICY_ENTRY)),
        pa.field("search", pa.list_(SEARCH_ENTRY)),
        pa.field("search_flags", pa.uint8(), nullable=False),
    ]
    + [pa.field(c, t) for _, c, t, _, _ in SEARCH_SCALARS]
    + [
        pa.field("search_extra_json", pa.string()),
        pa.field("extra_json", pa.string()),
    ]
)

VECTOR_PREFIX = "vec_"
_VECTOR_DTYPES = {"float16": pa.float16(), "float32": pa.float32(), "float64": pa.float64()}


@dataclass(frozen=True)
class VectorSpec:
    """A declared fixed-size per-move vector or tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"vector name {self.name!r} must be an identifier")
        if self.dtype not in _VECTOR_DTYPES:
            raise ValueError(f"vector {self.name!r}: dtype must be one of {sorted(_VECTOR_DTYPES)}")
        if not self.shape or any(int(d) <= 0 for d in self.shape):
            raise ValueError(f"vector {self.name!r}: shape must be positive, got {self.shape}")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def column(self) -> str:
        return VECTOR_PREFIX + self.name

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def arrow_field(self) -> pa.Field:
        return pa.field(
            self.column,
            pa.list_(_VECTOR_DTYPES[self.dtype], self.size),
            metadata={b"shape": json.dumps(list(self.shape)).encode()},
        )

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, name: str, obj: Mapping[str, Any]) -> "VectorSpec":
        return cls(name, tuple(int(d) for d in obj["shape"]), str(obj.get("dtype", "float32")))

    @classmethod
    def coerce(cls, name: str, decl: object) -> "VectorSpec":
        """Accept ``49``, ``(56, 8, 8)``, ``{"shape": [49], "dtype": "float32"}`` or a VectorSpec."""
        if isinstance(decl, VectorSpec):
            return decl
        if isinstance(decl, int):
            return cls(name, (decl,))
        if isinstance(decl, (tuple, list)):
            return cls(name, tuple(int(d) for d in decl))
        if isinstance(decl, Mapping):
            return cls.from_json(name, decl)
        raise TypeError(f"cannot declare vector {name!r} from {decl!r}")


def moves_schema(vectors: Mapping[str, VectorSpec]) -> pa.Schema:
    """The moves-file schema for a set of declared vectors (sorted by name)."""
    schema = BASE_MOVES_SCHEMA
    for name in sorted(vectors):
        schema = schema.append(vectors[name].arrow_field())
    return schema


def vectors_from_schema(schema: pa.Schema) -> dict[str, VectorSpec]:
    """Recover the vector declarations a moves file was written with."""
    out = {}
    for field in schema:
        if field.name.startswith(VECTOR_PREFIX):
            name = field.name[len(VECTOR_PREFIX):]
            shape = tuple(json.loads(field.metadata[b"shape"])) if field.metadata else (field.type.list_size,)
            out[name] = VectorSpec(name, shape, str(field.type.value_type.to_pandas_dtype().__name__))
    return out


def conform(data: pa.Table | pa.RecordBatch, schema: pa.Schema) -> Any:
    """``data`` (a table or a record batch) with exactly the columns of ``schema``, in its order.

    Columns ``data`` lacks (vectors declared after it was written) become
    nulls; columns of another type are cast.  Returned as is when it already
    matches.
    """
    if data.schema.names == schema.names and data.schema.types == schema.types:
        return data
    names = set(data.schema.names)
    cols = []
    for f in schema:
        if f.name in names:
            col = data.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(data.num_rows, f.type))
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(cols, schema=schema)
    return pa.table(cols, schema=schema)
