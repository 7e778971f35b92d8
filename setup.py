"""Build the Cython extensions in ``_ext/`` into the ``gamestore`` package."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "gamestore._encoder",
        ["_ext/_encoder.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
    # RingRift import: exact JSON text-style checks (optional: the import falls back to pure Python)
    Extension("gamestore.ringrift._rrjson", ["_ext/_rrjson.pyx"], extra_compile_args=["-O3"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
