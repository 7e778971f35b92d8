"""gamestore.arrays builds what pa.array / Table.from_pylist build, without pyarrow's pandas layer.

pyarrow's ``pa.array`` (and ``pa.scalar``, ``pq.read_table``) import pandas on first use: ~0.25 s of CPU
in every writing process (each import-sqlite worker paid it).  The write path builds its arrays
through gamestore.arrays instead; these tests prove the helpers equal pyarrow's own conversion and
that an import in a fresh process never loads pandas.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gamestore.arrays import from_pylist, list_lengths, numpy_array, rows_table, string_array
from gamestore.checkpoint import SHARDS_SCHEMA
from gamestore.schema import GAMES_SCHEMA

pytestmark = pytest.mark.single_backend  # the helpers and the compiled backend's import, whatever the pass
_TEXT = st.text(max_size=8)


def _values(atype: pa.DataType) -> st.SearchStrategy:
    if pa.types.is_integer(atype):
        info = np.iinfo(np.dtype(atype.to_pandas_dtype()))
        return st.integers(int(info.min), int(info.max))
    if pa.types.is_floating(atype):
        return st.floats(allow_nan=False, width=atype.bit_width)
    if pa.types.is_boolean(atype):
        return st.booleans()
    if pa.types.is_string(atype) or pa.types.is_large_string(atype):
        return _TEXT
    if pa.types.is_binary(atype) or pa.types.is_large_binary(atype):
        return st.binary(max_size=8)
    if pa.types.is_list(atype):
        return st.lists(st.none() | _values(atype.value_type), max_size=3)
    assert pa.types.is_struct(atype)
    return st.fixed_dictionaries({}, optional={f.name: st.none() | _values(f.type) for f in atype})


@pytest.mark.parametrize("field", list(GAMES_SCHEMA) + list(SHARDS_SCHEMA) + [pa.field("b", pa.bool_())],
                         ids=lambda f: f"{f.name}:{f.type}")
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_from_pylist_equals_pa_array(field, data):
    values = data.draw(st.lists(st.none() | _values(field.type), max_size=6))
    got = from_pylist(values, field.type)
    got.validate(full=True)
    assert got.equals(pa.array(values, type=field.type)), values


@given(st.lists(st.tuples(st.integers(-2**31, 2**31 - 1), st.booleans()), max_size=20))
def test_numpy_array_and_strings_equal_pa_array(pairs):
    values = np.array([v for v, _ in pairs], dtype=np.int64)
    mask = np.array([m for _, m in pairs], dtype=bool)
    for atype in (pa.int32(), pa.int64(), pa.float64()):
        assert numpy_array(values, atype, mask).equals(pa.array(values.astype(atype.to_pandas_dtype()), type=atype,
                                                                mask=mask))
    texts = [None if m else str(v) for v, m in pairs]
    for atype in (pa.string(), pa.large_string()):
        assert string_array(texts, atype).equals(pa.array(texts, type=atype))


def test_list_lengths_and_rows_table():
    lists = pa.array([[1, 2], None, [], [3]], pa.list_(pa.int8()))
    chunked = pa.chunked_array([lists, lists.slice(1)])
    assert list_lengths(chunked).tolist() == [2, 0, 0, 1, 0, 0, 1]
    rows = [{"shard_id": "a", "num_games": 3, "replaces": ["x"]}, {"shard_id": "b", "bytes": 7, "replaces": []}]
    assert rows_table(rows, SHARDS_SCHEMA).equals(pa.Table.from_pylist(rows, schema=SHARDS_SCHEMA))


def test_an_import_in_a_fresh_process_does_not_load_pandas(ringrift_dbs, tmp_path):
    from helpers import subprocess_env

    child = ("import json, sys\n"
             "from gamestore.ringrift.transfer import import_sqlite\n"
             "r = import_sqlite(sys.argv[1], sys.argv[2], progress=False, workers=0)\n"
             "import gamestore\n"
             "with gamestore.open(sys.argv[2], create=False) as s:\n"
             "    n = s.count_games()\n"
             "print(json.dumps({'pandas': 'pandas' in sys.modules, 'written': r.games_written, 'games': n}))\n")
    out = subprocess.run([sys.executable, "-c", child, str(ringrift_dbs["ringrift_v18_sample"]), str(tmp_path / "s")],
                         env=subprocess_env(GAMESTORE_BACKEND="cython"), capture_output=True, text=True, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {"pandas": False, "written": 10, "games": 10}


@given(st.lists(st.none() | st.text(max_size=6), max_size=30), st.booleans())
def test_compiled_utf8_buffers_equal_the_reference(values, large):
    from gamestore import _arrays
    from gamestore.arrays import _py_utf8_buffers

    got, ref = _arrays.utf8_buffers(values, large), _py_utf8_buffers(values, large)
    assert got[0].dtype == ref[0].dtype and got[0].tolist() == ref[0].tolist() and got[1] == ref[1]
    assert (got[2] is None and ref[2] is None) or got[2].tolist() == ref[2].tolist()


def test_a_string_column_refuses_other_values():
    from gamestore import _arrays
    from gamestore.arrays import _py_utf8_buffers

    for build in (_arrays.utf8_buffers, _py_utf8_buffers):
        with pytest.raises(TypeError, match="expected str or None, got int"):
            build(["a", None, 3], False)
