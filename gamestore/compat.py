"""Drop-in read API for code written against RingRift's ``GameReplayDB`` (see docs/ringrift.md)."""
from .ringrift.compat import GameReplayDB

__all__ = ["GameReplayDB"]
