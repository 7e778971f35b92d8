"""Stubs for the compiled ``gamestore.ringrift._rrmove`` (``_ext/_rrmove.pyx``)."""
from typing import Any

def move_fields(row: tuple, m: dict, typed: tuple) -> dict[str, Any] | None:
    """Put the typed columns of ``row`` that fit into ``m``; return the others tagged (or None)."""

def decompose_move_json(d: dict, m: dict) -> None:
    """Spread the parsed ``move_json`` ``d`` over the move record ``m`` (see ``cells.decompose_move_json``)."""

def move_json_fields(text: str, m: dict) -> bool:
    """Spread the ``move_json`` ``text`` over ``m`` as ``decompose_move_json`` spreads ``json.loads(text)`` when the
    text is proven to be its compact-style dump with the keys in ``MOVE_JSON_KEYS`` order; else False (``m`` untouched)."""
