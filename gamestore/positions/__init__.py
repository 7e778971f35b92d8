"""Training-data streaming internals; the public face is :mod:`gamestore.torch`.

``plan``, ``decode`` and ``buffer`` need only numpy/pyarrow/DuckDB; ``dataset``
and ``loader`` import torch.
"""
