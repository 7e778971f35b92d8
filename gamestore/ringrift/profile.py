"""The RingRift profile: its board types and GameReplayDB-compatible views (docs/ringrift.md)."""
from __future__ import annotations

from ..profiles import Profile
from . import views

__all__ = ["PROFILE", "BOARD_TYPES"]

#: RingRift's board types.
BOARD_TYPES = frozenset({"square8", "square19", "hex8", "hexagonal"})

PROFILE = Profile(
    name="ringrift",
    board_types=BOARD_TYPES,
    games_columns=views.GAMES_EXTRA_COLUMNS,
    install_views=views.install_views,
)
