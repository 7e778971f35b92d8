"""Stubs for the compiled ``gamestore.ringrift._rrjson`` (``_ext/_rrjson.pyx``)."""

def styled_equal(ob: bytes, text: bytes, spaced: bool, ascii_only: bool) -> bool:
    """True only when ``text`` is exactly what ``json.dumps`` writes, in the given style, for the
    value that orjson dumped compactly as ``ob``; False means "not proven", never "different"."""

def search_maps(q: dict, vc: dict, pp: dict) -> bool:
    """True when the three search maps share one key list (q not empty), q and pp hold floats, vc int32 ints."""

def finite_floats(d: dict) -> bool:
    """True when every value of ``d`` is a finite float."""

def canonical_object(text: str, key: str) -> tuple[int, int, int] | None:
    """``(index, key start, value end)`` of the top-level item ``key`` ((-1, -1, -1) when absent) when ``text`` is
    proven to be an object spelled as ``records.dump_json`` spells it; None when not proven."""

def span_equal(a: str, i: int, b: str, j: int, n: int) -> bool:
    """``a[i:i + n] == b[j:j + n]`` with both spans inside their texts, compared in place."""
