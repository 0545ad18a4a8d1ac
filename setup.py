"""Build the compiled modules of mmio (metadata lives in pyproject.toml, the sdist's contents in MANIFEST.in)."""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

MODULES = ["_errors", "_constants", "_pages", "_files", "_guard", "_mapping", "_open", "_buffers", "_residency",
           "_process"]
C_SOURCES = {"_guard": ["mmio/src/sigbus.c"]}
JOBS = len(os.sched_getaffinity(0))

extensions = [
    Extension(
        f"mmio.{name}",
        [f"mmio/{name}.pyx", *C_SOURCES.get(name, [])],
        include_dirs=["mmio/src", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"), ("_GNU_SOURCE", None)],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        nthreads=JOBS,
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "cdivision": True,
        },
    ),
    # compile the extension modules side by side: every install (and CI) builds them
    options={"build_ext": {"parallel": JOBS}},
)
