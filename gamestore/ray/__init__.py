"""Ray Data for gamestore (extra ``gamestore[ray]``): read games, moves and positions, write games.

``import gamestore`` never imports this module or Ray.  See docs/cluster.md.
"""
from .datasink import GamesDatasink, WriteSummary, decode_record, encode_record, records_to_dataset, write_games
from .datasource import GamesDatasource, MovesDatasource, read_games, read_moves
from .importer import DistributedImportReport, import_sqlite
from .positions import CollatePositions, PositionsDatasource, read_positions

__all__ = [
    "CollatePositions",
    "DistributedImportReport",
    "GamesDatasink",
    "GamesDatasource",
    "MovesDatasource",
    "PositionsDatasource",
    "WriteSummary",
    "decode_record",
    "encode_record",
    "import_sqlite",
    "read_games",
    "read_moves",
    "read_positions",
    "records_to_dataset",
    "write_games",
]
