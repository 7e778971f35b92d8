"""The store's place: its config file (``gamestore.json``), its subdirectories, and the leftovers of
crashed processes removed on open: staging directories on a local filesystem, uploads that never got a
manifest on object storage (docs/format.md section 2, docs/concurrency.md).  Everything goes through the
store's :class:`~gamestore.storage.Storage`."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable


from .checkpoint import CHECKPOINT_DIR
from .errors import FormatError, ProfileError, StoreExistsError, StoreNotFoundError
from .fsutil import TMP_NAME, utc_now
from .profiles import LEGACY_PROFILE, get_profile
from .schema import FORMAT_VERSION, READABLE_FORMAT_VERSIONS, VectorSpec
from .storage import Storage

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.fs as pafs

__all__ = ["CONFIG_FILE", "LAYOUT", "read_config", "require_store", "check_layout", "clean_leftovers", "pid_alive",
           "STALE_SECONDS", "write_json", "create_config", "record_profile", "clean_orphans", "prepare_store"]

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


def write_json(storage: Storage, rel: str, obj: Any, *, fsync: bool = True) -> None:
    """Replace the JSON file ``rel`` (config, meta) atomically."""
    storage.write_bytes(rel, json.dumps(obj, indent=1, sort_keys=True).encode(), fsync=fsync)


def read_config(storage: Storage | str | os.PathLike[str]) -> dict[str, Any]:
    """The store's ``gamestore.json``; typed errors for a location that is no store or a damaged config."""
    storage = Storage.from_location(storage)
    where = storage.uri
    for attempt in range(5):
        try:
            config = json.loads(storage.read_bytes(CONFIG_FILE))
            break
        except (FileNotFoundError, NotADirectoryError):
            raise StoreNotFoundError(f"not a gamestore: {where} (no {CONFIG_FILE})") from None
        except (ValueError, RecursionError) as exc:
            # local replaces are atomic; an S3-compatible server may serve a GET racing a PUT torn: read again
            if storage.local or attempt == 4:
                raise FormatError(f"store {where}: {CONFIG_FILE} is damaged: {exc}") from None
            time.sleep(0.05 * (attempt + 1))
        except OSError as exc:
            if not storage.local:
                raise  # a network failure, not damage
            raise FormatError(f"store {where}: {CONFIG_FILE} is damaged: {exc}") from None
    if not isinstance(config, dict):
        raise FormatError(f"store {where}: {CONFIG_FILE} is a JSON {type(config).__name__}, not an object")
    if config.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise FormatError(f"store {where}: format version {config.get('format_version')!r} is not supported")
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
        raise FormatError(f"store {where}: {CONFIG_FILE} is damaged: {exc}") from None
    return config


def require_store(path: str | os.PathLike[str] | Storage, *, filesystem: pafs.FileSystem | None = None) -> Storage:
    """The storage of ``path`` when it holds a readable gamestore (nothing is created); typed errors otherwise."""
    storage = Storage.from_location(path, filesystem=filesystem)
    if storage.local and os.path.exists(storage.root) and not os.path.isdir(storage.root):
        raise StoreNotFoundError(f"not a gamestore: {storage.uri} is not a directory")
    read_config(storage)
    if storage.local:
        check_layout(storage.local_path(), create=False)
    return storage


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


def create_config(storage: Storage, board_types: Iterable[str] | None, profile: str | None, *, fsync: bool) -> None:
    """Write the config of a new store at ``storage`` (StoreExistsError when the place holds something else)."""
    storage.makedirs("")
    with storage.lock(".lock"):
        if storage.exists(CONFIG_FILE):
            return
        foreign = [n for n in storage.list_dir("") if n not in LAYOUT and n not in (".lock", CONFIG_FILE)]
        if foreign:
            raise StoreExistsError(f"{storage.uri} exists and is not a gamestore (holds {sorted(foreign)[:3]})")
        bt = None if board_types is None else sorted(board_types)
        if storage.local:
            check_layout(storage.local_path(), create=True)
        config = {"format_version": FORMAT_VERSION, "created_at": utc_now(), "vectors": {}, "board_types": bt,
                  "profile": profile}
        write_json(storage, CONFIG_FILE, config, fsync=fsync)


def record_profile(storage: Storage, profile: str, *, fsync: bool) -> None:
    """Record ``profile`` in a store's config unless it has it; another profile is a :class:`ProfileError`."""
    with storage.lock(".lock"):
        config = read_config(storage)
        recorded = config.get("profile", LEGACY_PROFILE)
        if recorded == profile:
            return
        if recorded is not None:
            raise ProfileError(f"store {storage.uri} was created with profile {recorded!r}, not {profile!r}")
        config["profile"] = profile
        write_json(storage, CONFIG_FILE, config, fsync=fsync)


def clean_orphans(storage: Storage, uncommitted: set[str], *, grace_seconds: float = STALE_SECONDS) -> list[str]:
    """Object storage: delete shard prefixes without a manifest whose newest object is older than ``grace_seconds``.

    A writer or sync that died mid-upload leaves data objects without the
    manifest (the commit point); readers never see them.  The age is that of
    the objects (an upload in progress keeps writing new ones), never the
    shard id's timestamp (a synced shard keeps its original id).  Removes the
    cleaned ids from ``uncommitted`` and returns them.
    """
    removed = []
    now = time.time()
    for sid in sorted(uncommitted):
        entries = storage.list_files(f"shards/{sid}")
        if any(e.path.endswith("/MANIFEST.json") for e in entries):
            continue  # committed meanwhile
        if entries and now - max(e.mtime or now for e in entries) <= grace_seconds:
            continue
        try:
            storage.delete_dir(f"shards/{sid}")
        except OSError:
            continue  # read-only credentials: leave it to a process that may write
        removed.append(sid)
    uncommitted.difference_update(removed)
    return removed


def prepare_store(storage: Storage, *, create: bool, profile: str | None, board_types: Iterable[str] | None,
                  fsync: bool) -> None:
    """Before a store is opened: check its place, create its config when asked (``board_types`` default to
    the profile's), record ``profile``, and on a local filesystem make its directories and remove the
    leftovers of dead processes (:func:`gamestore.open`)."""
    if storage.local and os.path.exists(storage.root) and not os.path.isdir(storage.root):
        raise StoreNotFoundError(f"not a gamestore: {storage.uri} is not a directory")
    if profile is not None:
        get_profile(profile)  # an unknown name fails before anything is created
    if not storage.exists(CONFIG_FILE):
        if not create:
            raise StoreNotFoundError(f"not a gamestore: {storage.uri} (no {CONFIG_FILE})")
        if board_types is None and profile is not None:
            board_types = get_profile(profile).board_types
        create_config(storage, board_types, profile, fsync=fsync)
    read_config(storage)
    if profile is not None:
        record_profile(storage, profile, fsync=fsync)
    if storage.local:
        check_layout(storage.local_path(), create=True)
        clean_leftovers(storage.local_path())
