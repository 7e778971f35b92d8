"""Test and demo helpers shipped with gamestore: :mod:`gamestore.testing.synth`, realistic synthetic games."""
from __future__ import annotations

from . import synth

__all__ = ["synth"]
