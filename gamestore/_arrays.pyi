"""Stubs for the compiled ``gamestore._arrays`` (``_ext/_arrays.pyx``)."""
import numpy as np

def utf8_buffers(values: list, large: bool) -> tuple[np.ndarray, bytes, np.ndarray | None]:
    """``(offsets, UTF-8 data, null or None)`` of a list of str/None."""
