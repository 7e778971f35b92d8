"""Point reads of one game's moves (``get_game``) by the compiled decoder, straight from a moves file's bytes.

:class:`gamestore._decode.PointReader` (``_ext/_decode_point.pxi``) decompresses only the body buffers of a
record batch that the columns it decodes use, and of each only the prefix up to the game's last row (block by
block, libzstd's streaming API), through libzstd's C API with one context per thread, and builds
the move dicts from them: no pyarrow buffer, array or batch per read (their assembly was two thirds of a
batch read).  This module finds libzstd's functions, maps a file's schema to the places of its fields in the
batch messages, and sets a reader up per file.  Where any of it is unavailable (the pure-Python backend,
format-1 shards, a layout the reader does not handle, no libzstd), :func:`decode` returns None and the caller
reads the whole batch through Arrow as before.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import ShardCorruptError
from .ipc_batch import Damaged, Unsupported
from . import shard
from .manifest import MOVES_FILE
from .zstdlib import addresses as _zstd_addresses  # shared with a scan's compiled columns (sqlscan.py)

if TYPE_CHECKING:  # pragma: no cover
    from .ipc_batch import FastBatchReader
    from .shard import ShardReader

__all__ = ["available", "prefix_reads", "field_places", "decode"]


def _install() -> Any:
    try:
        from . import _decode
    except ImportError:
        return None
    if not hasattr(_decode, "PointReader"):
        return None
    addresses = _zstd_addresses()
    if addresses is None:
        return None
    _decode.set_zstd(*addresses)
    _decode.set_point_helper(_cores() > 1)  # a second core decodes half of a fresh batch's frames
    return _decode


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_decode_mod = _install()


def available() -> bool:
    """True when point reads run compiled (the extension is built and libzstd was found)."""
    return _decode_mod is not None


def prefix_reads() -> bool:
    """True when point reads decompress only the prefix of each buffer that the game needs (libzstd's
    streaming API was found); else they decompress the buffers they use whole."""
    return _decode_mod is not None and bool(_decode_mod.prefix_reads())


def field_places(schema: pa.Schema) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[str, int]], int, int]:
    """Where each field of ``schema`` is in a record batch message of its IPC file, and what it holds.

    Returns ``places`` (field path -> (field node index, first body buffer index); paths as ``policy``,
    ``policy.item``, ``policy.item.key``, ``vec_x.item``), ``kinds`` (path -> (kind, value width): 'i' signed
    integer, 'C' uint8, 'f' float32/64, 'e' float16, 'u' utf8, 'd' dictionary<int, utf8> (width: the index's),
    '+l' list, 'v' fixed-size list (width: its size), '+s' struct, '?' anything else), and the message's
    number of field nodes and body buffers.  The order is the IPC format's: depth-first, a field's own
    buffers before its children's.
    """
    places: dict[str, tuple[int, int]] = {}
    kinds: dict[str, tuple[str, int]] = {}
    count = [0, 0]

    def walk(path: str, t: pa.DataType) -> None:
        places[path] = (count[0], count[1])
        count[0] += 1
        if pa.types.is_dictionary(t):
            ok = pa.types.is_string(t.value_type) and pa.types.is_signed_integer(t.index_type)
            kinds[path] = ("d" if ok else "?", t.index_type.bit_width // 8)
            count[1] += 2
        elif pa.types.is_fixed_size_list(t):
            kinds[path] = ("v", t.list_size)
            count[1] += 1
            walk(f"{path}.item", t.value_type)
        elif pa.types.is_list(t):
            kinds[path] = ("+l", 4)
            count[1] += 2
            walk(f"{path}.item", t.value_type)
        elif pa.types.is_struct(t):
            kinds[path] = ("+s", 0)
            count[1] += 1
            for f in t:
                walk(f"{path}.{f.name}", f.type)
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            kinds[path] = ("u" if pa.types.is_string(t) else "?", 4)
            count[1] += 3
        else:
            if pa.types.is_signed_integer(t):
                kind = "i"
            elif pa.types.is_uint8(t):
                kind = "C"
            elif pa.types.is_float16(t):
                kind = "e"
            elif pa.types.is_floating(t):
                kind = "f"
            else:
                kind = "?"
            kinds[path] = (kind, t.bit_width // 8)
            count[1] += 2

    for f in schema:
        walk(f.name, f.type)
    return places, kinds, count[0], count[1]


def _make(fast: "FastBatchReader", vectors: list) -> Any:
    assert _decode_mod is not None
    places, kinds, nodes, bufs = field_places(fast.schema)
    tables: dict[str, Any] = {}
    for k, f in enumerate(fast.schema):
        paths = [p for p in places if (p == f.name or p.startswith(f.name + ".")) and kinds[p][0] == "d"]
        if not paths or f.name == "game_id":
            continue
        dicts = fast.column_dictionaries(k)  # depth-first, as ``places`` lists the paths
        if len(dicts) != len(paths):
            raise Unsupported(f"column {f.name!r}: {len(dicts)} dictionaries for {len(paths)} fields")
        for p, d in zip(paths, dicts):
            tables[p] = _decode_mod.str_table(d)
    return _decode_mod.PointReader(fast.view, places, kinds, tables, vectors, nodes, bufs)


def decode(reader: "ShardReader", index: int, start: int, stop: int) -> list[dict] | None:
    """The move dicts of rows ``[start, stop)`` of moves batch ``index`` of ``reader``'s shard, read compiled;
    None where the caller must read the batch through Arrow (see the module docstring).  The batch's checksum
    is checked first; damage is a :class:`~gamestore.errors.ShardCorruptError` without the shard's name (the
    caller adds it)."""
    verifier = reader.verifier(MOVES_FILE)
    if _decode_mod is None or verifier is None:
        return None
    fast = reader.fast_reader()
    if fast is None:
        return None
    point = fast.point
    if point is None:
        if fast.point_tried:
            return None
        fast.point_tried = True
        from ._backend_cython import _vector_specs

        try:
            point = fast.point = _make(fast, _vector_specs(reader.vectors))
        except Unsupported:
            return None
        except Damaged as exc:
            raise ShardCorruptError(f"moves.arrow dictionaries: {exc}") from exc
    key = reader.batch_key(index)
    cached = shard.BATCH_CACHE.get(key)
    if cached is not None and not isinstance(cached, _decode_mod.Scratch):
        return None  # the whole batch is cached (read through Arrow): the caller decodes it from there
    if cached is None:
        verifier.check(index)
    try:
        length, nodes, bufs, body = fast.point_layout(index)
        moves, scratch = point.decode(nodes, bufs, length, body, start, stop, cached)
        if cached is None:
            shard.BATCH_CACHE.put(key, scratch, scratch.nbytes)
        return moves
    except Unsupported:
        return None
    except Damaged as exc:
        raise ShardCorruptError(f"moves.arrow batch {index}: {exc}") from exc
