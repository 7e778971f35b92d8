"""Build the Cython extensions in ``_ext/`` into the ``gamestore`` package.

``_ext/_encode.pyx`` and ``_ext/_decode.pyx`` (with their ``.pxi`` includes) hold only the hot loops of the
compiled moves backend; ``_ext/_common.pxd`` their shared declarations
(found through ``include_path``).  ``gamestore/_backend_cython.py`` wraps them.
"""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def _extension(name: str, language: str = "c") -> Extension:
    return Extension(
        f"gamestore.{name}",
        [f"_ext/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
        language=language,
    )


extensions = [
    _extension("_encode", "c++"),  # libcpp.vector buffers
    _extension("_decode"),
    _extension("_positions"),  # PositionDataset's batch gathers (gamestore/positions/gather.py is the spec)
    _extension("_gil"),  # gamestore/gil.py: handing the GIL to a waiting event loop
    _extension("_xxh"),  # gamestore/checksum.py: xxh3 of a file's checksum ranges in one call without the GIL
    _extension("_arrays"),  # string column buffers without pyarrow's pandas layer (gamestore/arrays.py is the spec)
    _extension("_scan"),  # a scan's fixed-width columns decompressed in place (gamestore/sqlscan.py is the spec)
    # RingRift import: exact JSON text-style checks (optional: the import falls back to pure Python)
    Extension("gamestore.ringrift._rrjson", ["_ext/_rrjson.pyx"], extra_compile_args=["-O3"]),
    # RingRift import: policy / search-statistics text straight into the encoder's columns (textcols.py)
    Extension("gamestore.ringrift._rrcols", ["_ext/_rrcols.pyx"], extra_compile_args=["-O3"]),
    # RingRift import: a game_moves row's typed columns and move_json into the record (optional: pure Python)
    Extension("gamestore.ringrift._rrmove", ["_ext/_rrmove.pyx"], extra_compile_args=["-O3"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["_ext"],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
