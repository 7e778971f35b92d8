"""Stubs for the compiled ``gamestore.ringrift._rrcols`` (``_ext/_rrcols.pyx``)."""

def float_text(text: str) -> float | None:
    """``float(text)`` when ``repr`` of it is exactly ``text`` (proven), else None."""

def int_text(text: str) -> int | None:
    """``int(text)`` when ``repr`` of it is exactly ``text`` and it fits int64, else None."""

def search_columns(text: str) -> bytes | None:
    """The ``gamestore._encode.Columns`` data of a ``search_stats_json`` text proven exact, else None."""

def policy_columns(text: str) -> bytes | None:
    """The ``gamestore._encode.Columns`` data of a ``move_probs`` text proven exact, else None."""
