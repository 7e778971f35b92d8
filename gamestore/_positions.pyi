"""Type stubs of PositionDataset's compiled gathers (``_ext/_positions.pyx``; spec: ``gamestore/positions/gather.py``)."""
import numpy as np

def fill_policy(
    off_ptr: np.ndarray, idx_ptr: np.ndarray, prob_ptr: np.ndarray, part: np.ndarray, row: np.ndarray,
    lens: np.ndarray, index: np.ndarray, prob: np.ndarray, mask: np.ndarray,
) -> None: ...
def copy_rows(
    base_ptr: np.ndarray, valid_ptr: np.ndarray, part: np.ndarray, row: np.ndarray, out: np.ndarray, mask: np.ndarray,
) -> None: ...
