"""Stubs for the compiled ``gamestore.ringrift._rrmove`` (``_ext/_rrmove.pyx``)."""
from typing import Any, Callable

def move_fields(row: tuple, m: dict, typed: tuple) -> dict[str, Any] | None:
    """Put the typed columns of ``row`` that fit into ``m``; return the others tagged (or None)."""

def decompose_move_json(d: dict, m: dict) -> None:
    """Spread the parsed ``move_json`` ``d`` over the move record ``m`` (see ``cells.decompose_move_json``)."""

def move_json_fields(text: str, m: dict) -> bool:
    """Spread the ``move_json`` ``text`` over ``m`` as ``decompose_move_json`` spreads ``json.loads(text)`` when the
    text is proven to be its compact-style dump with the keys in ``MOVE_JSON_KEYS`` order; else False (``m`` untouched)."""

def configure(
    typed: tuple,
    columns: dict[str, int],
    hf_bytes: int,
    required_int: Callable[..., int],
    split_move_json: Callable[[Any, dict, dict], None],
    parse_policy: Callable[[Any], Any],
    parse_search: Callable[[Any], Any],
    style: dict[str, str],
    column_parsers: tuple | None = None,
) -> None:
    """What ``move_record`` needs of ``mapping`` and ``cells`` (set once, when ``mapping`` is imported)."""

def move_record(row: tuple, game_id: str, features: list) -> tuple[dict, str]:
    """``mapping._move_to_record(row, game_id, features)`` in C."""
