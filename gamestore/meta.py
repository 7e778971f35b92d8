"""Store-level JSON documents (``STORE/meta/<name>.json``): ``GameStore.put_meta``, ``get_meta``, ``meta_names``."""
from __future__ import annotations

import json
import re
from typing import Any

from .layout import write_json
from .storage import Storage

__all__ = ["put", "get", "names"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _rel(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"bad meta name {name!r}")
    return f"meta/{name}.json"


def put(storage: Storage, name: str, value: Any, *, fsync: bool) -> None:
    """Store ``value`` as the document ``name`` (atomic replace)."""
    rel = _rel(name)
    storage.makedirs("meta")
    write_json(storage, rel, value, fsync=fsync)


def get(storage: Storage, name: str, default: Any = None) -> Any:
    try:
        return json.loads(storage.read_bytes(_rel(name)))
    except FileNotFoundError:
        return default


def names(storage: Storage) -> list[str]:
    return sorted(n[: -len(".json")] for n in storage.list_dir("meta") if n.endswith(".json") and not n.startswith("."))
