"""The store directory: its config file (``gamestore.json``), its subdirectories, and the leftovers of
crashed processes removed on open (docs/format.md section 2, docs/concurrency.md)."""
from __future__ import annotations

import builtins
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .checkpoint import CHECKPOINT_DIR
from .errors import FormatError, StoreNotFoundError
from .fsutil import TMP_NAME
from .schema import READABLE_FORMAT_VERSIONS, VectorSpec

__all__ = ["CONFIG_FILE", "LAYOUT", "read_config", "require_store", "check_layout", "clean_leftovers", "pid_alive",
           "STALE_SECONDS"]

#: The store's config file.
CONFIG_FILE = "gamestore.json"
#: The subdirectories of a store.
LAYOUT = ("shards", "catalog", "tmp", "trash", "meta")

#: Staging entries older than this are removed even when their process seems alive (pid reuse).
STALE_SECONDS = 3600.0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(root: Path) -> None:
    """Remove staging and trash entries, and half-written atomic replaces, left by dead processes."""
    now = time.time()
    for sub in ("tmp", "trash"):
        d = root / sub
        if not d.exists():
            continue
        for entry in d.iterdir():
            parts = entry.name.split("-")
            pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
            try:
                age = now - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if sub == "trash" or (pid is not None and not pid_alive(pid)) or age > STALE_SECONDS:
                if sub == "tmp" and pid == os.getpid():
                    continue
                shutil.rmtree(entry, ignore_errors=True)
    # half-written ".<name>.<pid>.<thread>.tmp" files of atomic replaces (config, meta, catalog segments)
    for d in (root, root / "catalog", root / "catalog" / CHECKPOINT_DIR, root / "meta"):
        if not d.exists():
            continue
        for entry in d.glob(".*.tmp"):
            m = TMP_NAME.match(entry.name)
            if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
                try:
                    entry.unlink()
                except FileNotFoundError:
                    pass


def read_config(root: Path) -> dict[str, Any]:
    """The store's ``gamestore.json``; typed errors for a path that is no store or a damaged config."""
    root = Path(root)
    try:
        with builtins.open(root / CONFIG_FILE, encoding="utf-8") as f:
            config = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        raise StoreNotFoundError(f"not a gamestore: {root} (no {CONFIG_FILE})") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise FormatError(f"store {root}: {CONFIG_FILE} is damaged: {exc}") from None
    if not isinstance(config, dict):
        raise FormatError(f"store {root}: {CONFIG_FILE} is a JSON {type(config).__name__}, not an object")
    if config.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise FormatError(f"store {root}: format version {config.get('format_version')!r} is not supported")
    vectors, board_types = config.get("vectors", {}), config.get("board_types")
    try:
        if not isinstance(vectors, dict):
            raise TypeError("vectors is not an object")
        for name, spec in vectors.items():
            VectorSpec.from_json(name, spec)
        if board_types is not None and not (isinstance(board_types, list) and all(isinstance(b, str) for b in board_types)):
            raise TypeError("board_types is not a list of str")
        if config.get("profile") is not None and not isinstance(config["profile"], str):
            raise TypeError("profile is not a string")
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise FormatError(f"store {root}: {CONFIG_FILE} is damaged: {exc}") from None
    return config


def require_store(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path when it holds a readable gamestore (nothing is created); typed errors otherwise."""
    root = Path(path)
    read_config(root)
    check_layout(root, create=False)
    return root


def check_layout(root: Path, *, create: bool) -> None:
    """The store's directories exist (made when ``create``); a file in place of one is :class:`FormatError`."""
    for sub in LAYOUT:
        d = root / sub
        if d.is_dir():
            continue
        if d.exists() or d.is_symlink():
            raise FormatError(f"store {root}: {sub} is not a directory (the store is damaged)")
        if create:  # a missing directory is fine (git keeps no empty ones); made when the store is opened
            try:
                d.mkdir()
            except FileExistsError:
                if not d.is_dir():
                    raise FormatError(f"store {root}: {sub} is not a directory (the store is damaged)") from None
