"""RingRift profile: lossless import/export of GameReplayDB SQLite files, compatible SQL views, a compat reader."""
from .mapping import RINGRIFT_VECTORS, record_to_rows, rows_to_record

__all__ = ["RINGRIFT_VECTORS", "record_to_rows", "rows_to_record"]
