"""A JSON object handed to the store as its canonical text: stored as it is, parsed only when read.

A record's JSON-valued fields (a snapshot's ``state``, ``initial_state``, ``metadata``, unknown keys)
are normally dicts, which the store validates and serialises again (``records.json_canonical`` and
``records.dump_canonical_json``).  An importer that already holds the exact text the store would write
(``records.dump_json`` of the value: compact separators, ``ensure_ascii=False``) passes a
:class:`JSONText` instead and saves both the parse and the dump; the stored bytes, and what
``get_game`` returns (the parsed dict), are the same as for the dict.

As a :class:`~collections.abc.Mapping` a ``JSONText`` is the dict ``json.loads(text)`` gives (parsed on
first use), so code that reads records before they are written works unchanged.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Callable

from .errors import RecordError

__all__ = ["JSONText", "ParsedOnUse"]


class ParsedOnUse(Mapping):
    """A Mapping that is the object a JSON text reads as (``_json_text()``), parsed on first use with ``_loads``."""

    __slots__ = ()

    _value: dict
    _loads: Callable[[str], Any] = staticmethod(json.loads)

    def _json_text(self) -> str:
        raise NotImplementedError

    def _parsed(self) -> dict:
        try:
            return self._value
        except AttributeError:
            self._value = self._loads(self._json_text())
            return self._value

    def __getitem__(self, key: Any) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())


class JSONText(ParsedOnUse):
    """The JSON object whose canonical text (``records.dump_json`` of it) is ``text``.

    ``JSONText(text)`` checks that claim (a parse and a dump: no faster than passing the dict; meant for
    text that did not come with a proof) and raises :class:`~gamestore.errors.RecordError` otherwise.
    :meth:`proven` skips the check, for callers that proved it another way (the RingRift importer's
    compiled validator, ``gamestore/ringrift/jsontext.py``).
    """

    __slots__ = ("text", "_value")

    text: str

    def __init__(self, text: str) -> None:
        from .records import _check_json_keys, dump_json

        try:
            value = json.loads(text) if type(text) is str else None
        except ValueError as exc:
            raise RecordError(f"not JSON text: {exc}", field="JSONText") from None
        if type(value) is not dict:
            raise RecordError("JSONText holds a JSON object", field="JSONText")
        _check_json_keys(value, None, "JSONText", 0)  # nesting depth, as for a dict
        try:
            same = dump_json(value) == text
        except ValueError:  # NaN / infinity
            same = False
        if not same:
            raise RecordError("not the canonical text of its value (records.dump_json)", field="JSONText")
        self.text = text
        self._value = value

    @classmethod
    def proven(cls, text: str) -> JSONText:
        """A ``JSONText`` of ``text`` without the check: the caller guarantees ``dump_json(json.loads(text)) == text``
        and that the value is an object."""
        obj = cls.__new__(cls)
        obj.text = text
        return obj

    def _json_text(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if type(other) is JSONText:
            return self.text == other.text
        return self._parsed() == other

    __hash__ = None  # type: ignore[assignment]  # like dict

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"

    def __reduce__(self) -> tuple:
        return (JSONText.proven, (self.text,))
