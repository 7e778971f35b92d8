"""Where a store lives: its root directory on a ``pyarrow.fs.FileSystem``.

Every file a store reads or writes (shards, manifests, catalog segments and
checkpoints, the config) goes through one :class:`Storage`.  Two kinds:

* **local** (a path, ``file://``, or a ``LocalFileSystem``): the fast paths
  of a POSIX filesystem are used: shards are committed by ``rename(2)``,
  files are fsynced, memory-mapped for reading and locked with ``flock``;
* **object storage** (``s3://``, ``gs://``, any other ``FileSystem``): no
  rename, no fsync, no locks.  A shard is committed by writing its manifest
  last (docs/format.md, "Commit protocol on object storage"); a whole-object
  PUT is atomic, so ``write_bytes`` replaces an object without a temporary
  name.

``Storage.from_location`` accepts a local path, any URI that
``pyarrow.fs.FileSystem.from_uri`` accepts, or a path plus an explicit
``filesystem=``.  For ``s3://`` URIs without an ``endpoint_override`` the
endpoint is taken from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (which
pyarrow itself ignores); credentials come from the standard environment
variables (pyarrow's AWS SDK chain).
"""
from __future__ import annotations

import contextlib
import errno
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pyarrow as pa

from .errors import GamestoreError
from .fsutil import atomic_path, file_lock
from .lazy import lazy_module

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.fs as pafs
else:
    # ~10 ms (it loads the S3, GCS, Azure and HDFS bindings and ssl): a local store imports it only when it
    # needs its filesystem object (listing recursively, file info, another store's filesystem)
    pafs = lazy_module("pyarrow.fs")

__all__ = ["Storage", "Entry", "StorageError", "location_of", "PART_BYTES", "PARTS"]

#: object storage: large data files are read as ranged GETs of this size ...
PART_BYTES = 1 << 20
#: ... this many at once (benchmarks/bench_objstore.py: 2-7x one GET stream on the local S3 server)
PARTS = 4


class StorageError(GamestoreError, ValueError):
    """A store location that cannot be used (bad URI, unknown filesystem)."""


@dataclass(frozen=True)
class Entry:
    """One file under a prefix: its path relative to the store root, size in bytes, mtime (epoch seconds)."""

    path: str
    size: int
    mtime: float | None


def _endpoint_from_env() -> dict[str, str]:
    """``endpoint_override``/``scheme`` query parameters from ``AWS_ENDPOINT_URL(_S3)``, as boto reads them."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return {}
    parsed = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
    if not parsed.netloc:
        raise StorageError(f"AWS_ENDPOINT_URL {url!r} has no host")
    return {"endpoint_override": parsed.netloc, "scheme": parsed.scheme or "https"}


def _s3_uri(uri: str) -> str:
    """``uri`` with the endpoint from the environment and single-PUT uploads unless the URI says otherwise."""
    parts = urllib.parse.urlsplit(uri)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if "endpoint_override" not in query:
        query.update(_endpoint_from_env())
    if "region" not in query and "endpoint_override" in query:
        # an S3-compatible server: resolving the bucket's region would ask AWS
        query["region"] = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # one PUT per object instead of a three-request multipart upload (objects here are small)
    query.setdefault("allow_delayed_open", "true")
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def location_of(location: str | os.PathLike,
                filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem | None, str]:
    """The filesystem and root path a location names (see :meth:`Storage.from_location`); None for a local
    path (the local filesystem, made when first needed)."""
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):
            raise StorageError(f"filesystem must be a pyarrow.fs.FileSystem, not {type(filesystem).__name__}")
        path = os.fspath(location)
        if isinstance(filesystem, pafs.LocalFileSystem):
            path = os.path.abspath(path)
        return filesystem, path.rstrip("/") or "/"
    text = os.fspath(location)
    if isinstance(text, bytes):
        raise StorageError("store locations are str or os.PathLike, not bytes")
    if "://" not in text:
        return None, os.path.abspath(text)
    uri = _s3_uri(text) if text.startswith("s3://") else text
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OSError) as exc:
        raise StorageError(f"cannot open {text!r}: {exc}") from exc
    return fs, path.rstrip("/") or "/"


class Storage:
    """A store's root on a filesystem, with the operations the engine needs (thread-safe)."""

    def __init__(self, fs: pafs.FileSystem | None, root: str, *, uri: str | None = None) -> None:
        """``fs`` None: the local filesystem (every local operation goes through ``os``; :attr:`fs` is made when
        first asked for)."""
        self._fs = fs
        self.root = root.rstrip("/") or "/"
        self.local = fs is None or isinstance(fs, pafs.LocalFileSystem)
        if uri is None:
            uri = self.root if self.local else f"{self.fs.type_name}://{self.root}"
        self.uri = uri

    @property
    def fs(self) -> pafs.FileSystem:
        """The store's ``pyarrow.fs`` filesystem."""
        if self._fs is None:
            self._fs = pafs.LocalFileSystem()
        return self._fs

    @classmethod
    def from_location(
        cls, location: "str | os.PathLike | Storage", *, filesystem: pafs.FileSystem | None = None
    ) -> "Storage":
        """A path, a URI (``s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http``, ``gs://``,
        ``file://``), or a path on an explicit ``filesystem``."""
        if isinstance(location, Storage):
            return location
        fs, root = location_of(location, filesystem)
        text = os.fspath(location)
        uri = root if fs is None or isinstance(fs, pafs.LocalFileSystem) else _display_uri(str(text), fs, root)
        return cls(fs, root, uri=uri)

    # -- paths --------------------------------------------------------------------------
    def path(self, rel: str = "") -> str:
        """The full path of ``rel`` (``"shards/<id>/MANIFEST.json"``) on the filesystem."""
        if not rel:
            return self.root
        return f"{self.root}/{rel}" if self.root != "/" else f"/{rel}"

    def local_path(self, rel: str = "") -> Path:
        """``rel`` as a local Path (local storage only)."""
        if not self.local:
            raise StorageError(f"{self.uri} is not on a local filesystem")
        return Path(self.path(rel))

    # -- reading ------------------------------------------------------------------------
    def info(self, rel: str) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path(rel))

    def size(self, rel: str) -> int | None:
        """The size of file ``rel`` in bytes (None when it does not exist)."""
        if self.local:
            try:
                return os.stat(self.path(rel)).st_size
            except FileNotFoundError:
                return None
        info = self.info(rel)
        return None if info.type == pafs.FileType.NotFound else int(info.size)

    def exists(self, rel: str) -> bool:
        if self.local:
            return os.path.exists(self.path(rel))
        return self.info(rel).type != pafs.FileType.NotFound

    def read_bytes(self, rel: str, *, large: bool = False, size: int | None = None) -> bytes:
        """The whole content of ``rel``; ``FileNotFoundError`` when it does not exist.

        ``large`` (object storage): a data file that may be megabytes; one
        larger than :data:`PART_BYTES` is fetched as ranged GETs,
        :data:`PARTS` at once (a single GET stream is latency-bound).
        ``size``, when the caller knows it (a manifest), saves asking for it.

        The bytes are Python's: Arrow reads over them (``pa.BufferReader``) run
        with ``use_threads=False``.  An Arrow worker thread that drops the last
        reference to a Python-owned buffer needs the GIL; during interpreter
        shutdown that thread is made to exit, through C++ frames, and the process
        aborts ("terminate called without an active exception", exit -6: one
        ``gamestore verify s3://...`` in five did before).
        """
        if self.local:
            with open(self.path(rel), "rb") as f:
                return f.read()
        try:
            if large and (size is None or size > PART_BYTES):
                return self._read_parts(rel)
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            if _is_not_found(exc):
                raise FileNotFoundError(errno.ENOENT, f"{self.uri}: no {rel}") from None
            raise

    def _read_parts(self, rel: str) -> bytes:
        with self.fs.open_input_file(self.path(rel)) as f:  # one HEAD for the size
            size = f.size()
            if size <= PART_BYTES:
                return f.read()
            from concurrent.futures import ThreadPoolExecutor  # object storage only: not with every open (3-5 ms)

            offsets = range(0, size, PART_BYTES)
            # a pool per call, not per process: fork-safe (DataLoader workers), and ranged reads are thread-safe
            with ThreadPoolExecutor(min(PARTS, len(offsets)), thread_name_prefix="gamestore-get") as pool:
                parts = list(pool.map(lambda off: f.read_at(min(PART_BYTES, size - off), off), offsets))
        return b"".join(parts)

    def list_dir(self, rel: str) -> list[str]:
        """Names of the entries (files and sub-directories / common prefixes) directly under ``rel``."""
        if self.local:
            try:
                return os.listdir(self.path(rel))
            except FileNotFoundError:
                return []
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True, recursive=False)
        base = len(self.path(rel)) + 1
        return [i.path[base:] for i in self.fs.get_file_info(sel) if i.path[base:]]

    def list_files(self, rel: str) -> list[Entry]:
        """Every file below ``rel`` (recursively), paths relative to the store root."""
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True, recursive=True)
        base = len(self.root.rstrip("/")) + 1
        out = []
        for i in self.fs.get_file_info(sel):
            if i.type == pafs.FileType.File:
                mtime = i.mtime.timestamp() if i.mtime is not None else None
                out.append(Entry(i.path[base:], int(i.size or 0), mtime))
        return out

    def dir_signature(self, rel: str) -> tuple[int, int] | None:
        """A cheap change token of directory ``rel`` (local: mtime and link count); None on object storage."""
        if not self.local:
            return None
        st = os.stat(self.path(rel))
        return (st.st_mtime_ns, st.st_nlink)

    # -- writing ------------------------------------------------------------------------
    def makedirs(self, rel: str) -> None:
        """Create directory ``rel`` (local only: object stores have no directories)."""
        if self.local:
            os.makedirs(self.path(rel), exist_ok=True)

    def write_bytes(self, rel: str, data: bytes | pa.Buffer, *, fsync: bool = True) -> None:
        """Replace ``rel`` atomically: readers see the old content or the new, never a part.

        Local: a temporary name in the same directory, fsynced, renamed, the
        directory fsynced.  Object storage: one PUT (atomic by itself).
        """
        if not self.local:
            with self.fs.open_output_stream(self.path(rel)) as f:
                f.write(data)
            return
        with atomic_path(self.path(rel), fsync=fsync) as tmp:
            with open(tmp, "wb") as f:
                f.write(memoryview(data))

    def put_new(self, rel: str, data: bytes | pa.Buffer, *, fsync: bool = True) -> None:
        """Write ``rel`` that nobody else writes (a unique name): no temporary name needed on any storage."""
        if not self.local:
            with self.fs.open_output_stream(self.path(rel)) as f:
                f.write(data)
            return
        with open(self.path(rel), "wb") as f:
            f.write(memoryview(data))
            f.flush()
            if fsync:
                os.fsync(f.fileno())

    def delete_file(self, rel: str) -> None:
        """Remove ``rel``; a missing file is not an error."""
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(rel))
            return
        _missing_ok(self.fs.delete_file, self.path(rel))

    def delete_dir(self, rel: str) -> None:
        """Remove directory (prefix) ``rel`` with everything below it; a missing one is not an error."""
        _missing_ok(self.fs.delete_dir, self.path(rel))

    @contextlib.contextmanager
    def lock(self, rel: str, *, blocking: bool = True) -> Iterator[bool]:
        """An exclusive inter-process lock on ``rel`` (``flock``); yields whether it was taken.

        Object storage has no locks: it yields True at once.  Nothing that
        keeps data correct depends on this lock (writers never take it).
        """
        if not self.local:
            yield True
            return
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(file_lock(self.path(rel), blocking=blocking))
            except BlockingIOError:
                yield False
                return
            yield True

    def same_place(self, other: "Storage") -> bool:
        """Whether both name the same root (local paths compared after resolving links)."""
        if self.local and other.local:
            return os.path.realpath(self.root) == os.path.realpath(other.root)
        return self == other

    def __repr__(self) -> str:
        return f"<Storage {self.uri!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Storage) and self.fs.equals(other.fs) and self.root == other.root

    def __hash__(self) -> int:
        return hash(("local" if self.local else self.fs.type_name, self.root))


def _missing_ok(delete, path: str) -> None:
    try:
        delete(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if not _is_not_found(exc):
            raise


def _is_not_found(exc: OSError) -> bool:
    text = str(exc)
    return "NoSuchKey" in text or "Not Found" in text or "does not exist" in text or "404" in text


_SECRET_PARAMS = ("access_key", "secret_key", "session_token")


def _display_uri(text: str, fs: pafs.FileSystem, root: str) -> str:
    """A URI for messages: the caller's (credentials in its query removed), else ``<type>://<root>``."""
    if "://" not in text:
        return f"{fs.type_name}://{root}"
    parts = urllib.parse.urlsplit(text)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in _SECRET_PARAMS]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


#: ``S3FileSystem`` options that an ``s3://`` URI can carry, and that say where the data is (never who reads it).
_S3_URI_OPTIONS = ("endpoint_override", "scheme", "region", "allow_delayed_open", "tls_ca_file_path")


def portable_location(storage: Storage) -> str:
    """A location that opens ``storage`` on another machine: a path, or a URI naming the filesystem's endpoint.

    For ``s3://`` the URI carries the endpoint, scheme and region the
    filesystem resolved here (from the URI, ``AWS_ENDPOINT_URL`` or an
    explicit ``S3FileSystem``), so remote processes need no endpoint
    variables; it never carries credentials: remote processes take theirs
    from their own environment (pyarrow's AWS SDK chain).  Other
    filesystems: the caller's URI, credentials removed.
    """
    if storage.local:
        return storage.root
    if isinstance(storage.fs, pafs.S3FileSystem):
        options = storage.fs.__reduce__()[1][0]  # the filesystem's own options (what pickling would send)
        query = []
        for key in _S3_URI_OPTIONS:
            value = options.get(key)
            if value in (None, "", False):
                continue
            query.append((key, "true" if value is True else str(value)))
        return f"s3://{storage.root}" + (f"?{urllib.parse.urlencode(query, safe=':/')}" if query else "")
    if "://" not in storage.uri:
        raise StorageError(f"{storage.uri}: a store on a {storage.fs.type_name} filesystem has no URI to open it elsewhere")
    return storage.uri
