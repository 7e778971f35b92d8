"""Filesystem primitives of the store: atomic replaces, fsync, checksums, file locks, UTC time.

Every module that makes a file durable, replaces one atomically, hashes one
or takes an inter-process lock does it through these functions, so that the
crash-safety rules of docs/format.md and docs/concurrency.md live in one
place.  Nothing here knows about shards, catalogs or records.
"""
from __future__ import annotations

import builtins
import datetime as _dt
import fcntl
import hashlib
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = [
    "HASH_CHUNK",
    "TMP_NAME",
    "utc_now",
    "utc_stamp",
    "fsync_file",
    "fsync_dir",
    "tmp_path",
    "atomic_path",
    "sha256_file",
    "file_lock",
]

#: Bytes read at a time when hashing files.
HASH_CHUNK = 1 << 20
#: Names of the temporary files of :func:`atomic_path`: ``.<name>.<pid>.<thread>.tmp`` (group 1: the pid).
TMP_NAME = re.compile(r"^\..+\.(\d+)\.\d+\.tmp$")


def utc_now() -> str:
    """The current UTC time as ISO-8601 text with microseconds (``2026-01-02T03:04:05.123456+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def utc_stamp() -> str:
    """The current UTC time as sortable compact text, ``YYYYmmddTHHMMSSffffff`` (shard ids)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def fsync_file(path: str | os.PathLike) -> None:
    """Flush one file's data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (creations, renames, removals) to stable storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_path(path: Path) -> Path:
    """The temporary sibling of ``path`` that :func:`atomic_path` writes (unique per process and thread)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it replaces ``path`` atomically.

    With ``fsync`` the file is flushed before the rename and the directory
    after it, so the new content is durable when the block exits.  On any
    error the temporary file is removed and ``path`` is left as it was.
    Leftovers of a killed process match :data:`TMP_NAME` (the store cleans
    them on open).
    """
    target = Path(path)
    tmp = tmp_path(target)
    try:
        yield tmp
        if fsync:
            fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(target.parent)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with builtins.open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def file_lock(path: str | os.PathLike, *, blocking: bool = True) -> Iterator[IO[str]]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Without ``blocking`` a lock held elsewhere raises :class:`BlockingIOError`
    at once.  The lock is released when the block exits or the process dies.
    """
    with builtins.open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield f
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
