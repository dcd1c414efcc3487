"""Packaging for ratchet_sel: the library needs nothing beyond the standard library.

One optional C extension, ``ratchet_sel.ops._speedups`` (WebSocket XOR masking), is
compiled when a C compiler and Python's headers are present.  When it cannot
be built the install goes on without it, silently apart from one line: the
library falls back to its pure-Python masking (see ratchet_sel/ops/accelerator.py).
"""

import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: a missing compiler or header only skips the accelerator."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # distutils raises several unrelated types for "no compiler"
            self._skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skipped(exc)

    @staticmethod
    def _skipped(exc: Exception) -> None:
        sys.stderr.write("ratchet_sel: C accelerator not built (%s); the pure-Python path will be used\n"
                         % (str(exc).strip().splitlines() or [type(exc).__name__])[-1])

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="ratchet_sel",
    version="0.1.0",
    description="WebSocket (RFC 6455, HyBi-10) and socket servers from small components on one selectors loop",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["ratchet_sel", "ratchet_sel.*"]),
    package_data={"ratchet_sel": ["py.typed"]},
    ext_modules=[Extension("ratchet_sel.ops._speedups", ["ratchet_sel/ops/_speedups.c"], optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
    python_requires=">=3.8",
    extras_require={"test": ["pytest", "pytest-timeout", "prometheus_client"]},
    entry_points={"console_scripts": ["ratchet-sel=ratchet_sel.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Operating System :: POSIX",
        "Topic :: Internet :: WWW/HTTP",
        "Typing :: Typed",
    ],
)
