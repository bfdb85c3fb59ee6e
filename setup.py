"""The C extension only; everything else about the package is in pyproject.toml.

kdns.server._hotpath replays fast-path reply templates per packet (kdns/server/fastpath.py says why
that part is C). Building it needs a C compiler and Python's headers (gcc, python3-dev on Debian).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kdns.server._hotpath",
            sources=["kdns/server/_hotpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
        )
    ]
)
