"""RingRift's policy and search-statistics JSON text straight into the encoder's columns.

``_rrcols.policy_columns`` / ``search_columns`` parse a ``move_probs`` /
``search_stats_json`` text in C into the column layout of
``gamestore._encode.Columns`` (candidate keys, float64 values, int32 visits,
scalars), proving on the way that ``json.dumps`` of the parsed value gives the
text back byte for byte (every float's text is the one ``repr`` writes: see
``_ext/_rrcols.pyx``), so no Python dict, float or str is made per candidate.
The objects below carry the columns to the compiled encoder and are, for every
other reader (the reference backend, ``normalize_move``, ``record_to_rows``),
the Mapping ``json.loads(text)`` gives, parsed on first use.  Text the C parser
cannot prove takes the reference path of :mod:`gamestore.ringrift.cells`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from ..rawjson import ParsedOnUse
from .jsontext import loads

__all__ = ["policy_text", "search_text", "COLUMN_PARSERS"]

policy_text: Callable[[str], Mapping | None] | None
search_text: Callable[[str], Mapping | None] | None
#: ``(policy_columns, search_columns, TextColumns)`` for a compiled caller that builds the objects itself
#: (``_rrmove.move_record``: what :func:`policy_text` / :func:`search_text` return), None when not built
COLUMN_PARSERS: tuple[Callable[[str], bytes | None], Callable[[str], bytes | None], type] | None

try:
    from .._encode import Columns as _Columns
    from ._rrcols import policy_columns as _policy_columns, search_columns as _search_columns
except ImportError:  # pragma: no cover - extensions not built: the reference path only
    policy_text = search_text = COLUMN_PARSERS = None
else:

    class TextColumns(_Columns, ParsedOnUse):
        """Columns parsed from a JSON text (``source``); as a Mapping, ``json.loads(source)``."""

        __slots__ = ("_value",)
        _loads = staticmethod(loads)

        def _json_text(self) -> str:
            return self.source

        def __repr__(self) -> str:
            return f"{type(self).__name__}({self.source!r})"

    def policy_text(text: str) -> Mapping | None:
        """The policy of a ``move_probs`` text (``json.dumps`` style, finite floats) in column form, else None."""
        data = _policy_columns(text)
        return None if data is None else TextColumns(data, text)

    def search_text(text: str) -> Mapping | None:
        """The search statistics of a ``search_stats_json`` text (``json.dumps`` style, RingRift's key order,
        three maps with one key list) in column form, else None."""
        data = _search_columns(text)
        return None if data is None else TextColumns(data, text)

    COLUMN_PARSERS = (_policy_columns, _search_columns, TextColumns)
