"""Game profiles: what a store adds for one game on top of the game-agnostic core.

The core stores any game.  A profile names the board types a store of that
game accepts and the SQL views it adds over the core views (``games``,
``moves``, ``players``, ``policies``, ``games_full``).  A store created with
``gamestore.open(path, profile="ringrift")`` records the profile's name in
its ``gamestore.json``; every later open installs that profile's views.  A
store whose config predates profiles (no ``profile`` key) is a RingRift
store: those views were installed on every store then.

Profiles are found by name in :data:`PLUGINS` (module paths, imported on
first use) or added with :func:`register`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ProfileError

__all__ = ["Profile", "PLUGINS", "LEGACY_PROFILE", "register", "get_profile", "profile_names"]


@dataclass(frozen=True)
class Profile:
    """One game's additions to a store."""

    name: str
    #: board types a store created with this profile accepts (None: any)
    board_types: frozenset[str] | None = None
    #: SQL expressions (``<expr> AS <name>``) over the games index appended to the ``games`` view
    games_columns: tuple[str, ...] = ()
    #: creates the profile's views on a DuckDB connection that already has the core views
    install_views: Callable[[Any], None] | None = None


#: Profile name -> module whose ``PROFILE`` attribute is the :class:`Profile`.
PLUGINS: dict[str, str] = {"ringrift": "gamestore.ringrift.profile"}
#: The profile of stores created before profiles were recorded.
LEGACY_PROFILE = "ringrift"
_loaded: dict[str, Profile] = {}


def register(profile: Profile) -> None:
    """Make ``profile`` available by name (replacing one of the same name)."""
    _loaded[profile.name] = profile


def get_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name is a :class:`~gamestore.errors.ProfileError` (a ``ValueError``)."""
    profile = _loaded.get(name)
    if profile is None:
        module = PLUGINS.get(name)
        if module is None:
            raise ProfileError(f"unknown profile {name!r} (known: {', '.join(profile_names())})")
        profile = importlib.import_module(module).PROFILE
        _loaded[name] = profile
    return profile


def profile_names() -> list[str]:
    return sorted(set(PLUGINS) | set(_loaded))
