"""One-file deployment: an application and the ``ratchet_sel`` package in one zipapp.

``python -m ratchet_sel bundle chat.py -o chat.pyz`` writes an executable
archive (stdlib :mod:`zipapp`) that holds ``chat.py``, any files given with
``--include``, and the ``ratchet_sel`` package (its modules and data files;
never tests, scripts or ``__pycache__``).  It runs with ``python3 chat.pyz``,
``./chat.pyz``, and with ``python3 -I -S chat.pyz`` on a host where nothing is
installed: Python puts the archive itself first on ``sys.path``, so the
package and the application import from inside it.

Inside the archive the application is a module named after its file (``chat``)
that a generated ``__main__.py`` runs as ``__main__``.  Its ``__file__`` is
then a path *inside* the archive, such as ``/srv/chat.pyz/chat.py``: a name
that :func:`open` cannot read, because ``/srv/chat.pyz`` is a file, not a
folder.  Two helpers cover the two kinds of files an application reads:

* :func:`read_beside` reads a data file shipped *with the code*
  (``--include index.html``): from the archive when bundled, from the disk
  otherwise.
* :func:`deployment_dir` is the folder that holds the archive (or the script,
  when not bundled): the place for files that belong to one deployment, such as
  a configuration file or certificates, which are not in the archive.

The package's own data (the chat demo's page) lives in Python modules, so it
loads from the archive without touching the filesystem.  Without an
application, ``python -m ratchet_sel bundle -o ratchet_sel.pyz`` bundles the
package's own command line: ``python3 -I -S ratchet_sel.pyz chat --port 8000``.
"""

import argparse
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import zipapp
import zipfile
from typing import Iterable, List, Optional, Sequence

__all__ = ["BundleError", "build_bundle", "read_beside", "deployment_dir", "archive_of",
           "DEFAULT_INTERPRETER"]

log = logging.getLogger(__name__)

DEFAULT_INTERPRETER = "/usr/bin/env python3"

# What never goes into a bundle from the package folder.
_SKIPPED_DIRS = {"__pycache__", "tests", "test", "scripts"}
# Compiled extensions cannot be imported from a zip (an in-place-built _speedups.*.so
# would only be dead weight): the bundle always runs the pure-Python path.
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp", "~", ".so", ".pyd", ".dylib")

_MAIN_TEMPLATE = '''\
# Written by "python -m ratchet_sel bundle": run {module} as the main program.
# The archive is first on sys.path, so {module} and ratchet_sel import from it.
import runpy

runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
'''


class BundleError(Exception):
    """A bundle cannot be built; the message says why and what to change."""


def _package_dir() -> str:
    # This module lives in ratchet_sel/ops/: the package is one folder up.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(here):
        raise BundleError("ratchet_sel is itself running from an archive (%s); build bundles from a "
                          "checkout or an installed copy" % here)
    return here


def _copy_package(source: str, target: str) -> List[str]:
    """Copy the package tree without caches, tests or editor leftovers; returns the copied files."""
    copied = []
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("."))
        relative = os.path.relpath(folder, source)
        os.makedirs(os.path.join(target, relative), exist_ok=True)
        for name in sorted(files):
            if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
                continue
            shutil.copy2(os.path.join(folder, name), os.path.join(target, relative, name))
            copied.append(os.path.normpath(os.path.join(relative, name)))
    return copied


def _module_name(app: str) -> str:
    name, ext = os.path.splitext(os.path.basename(app))
    if ext != ".py" or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name in ("__main__", "ratchet_sel"):
        raise BundleError("the application must be a .py file whose name is a Python identifier other than "
                          "__main__ and ratchet_sel (got %r)" % os.path.basename(app))
    return name


def build_bundle(app: Optional[str], output: Optional[str] = None, *, interpreter: str = DEFAULT_INTERPRETER,
                 compress: bool = False, include: Iterable[str] = ()) -> str:
    """Write ``app`` plus the ratchet_sel package into one executable zipapp; returns its path.

    Without ``app`` (``None``) the archive runs ratchet_sel's own command line
    (``python3 ratchet_sel.pyz chat --port 8000``).  ``output`` defaults to the
    application's name with ``.pyz`` in the current folder, as ``zipapp``
    does (``ratchet_sel.pyz`` without ``app``), never beside the source.
    Compiled extension files (``.so``, ``.pyd``, ``.dylib``) are left out:
    they cannot load from a zip.
    ``interpreter`` is the shebang line (without ``#!``); an empty string writes
    none.  ``compress`` deflates the members (smaller file, slower start).
    ``include`` names files or folders to put at the top of the archive beside the
    application (helper modules, pages, templates), read back with
    :func:`read_beside`.  Raises :class:`BundleError` with the reason when an input
    is missing or unusable.
    """
    if app is None:
        module = "ratchet_sel"
        output = output if output is not None else "ratchet_sel.pyz"
    else:
        if not os.path.isfile(app):
            raise BundleError("no such application file: %s" % app)
        module = _module_name(app)
        if output is None:
            output = module + ".pyz"
    if os.path.isdir(output):
        raise BundleError("the output %s is a folder; give a file name such as %s.pyz" % (output, module))
    extras = list(include)
    with tempfile.TemporaryDirectory(prefix="ratchet_sel-bundle-") as staging:
        taken = {"ratchet_sel", "__main__.py"}
        if app is not None:
            shutil.copy2(app, os.path.join(staging, module + ".py"))
            taken.add(module + ".py")
        _copy_package(_package_dir(), os.path.join(staging, "ratchet_sel"))
        for extra in extras:
            name = os.path.basename(os.path.normpath(extra))
            if name in taken:
                raise BundleError("--include %s: the archive already has %r" % (extra, name))
            taken.add(name)
            if os.path.isdir(extra):
                _copy_package(extra, os.path.join(staging, name))
            elif os.path.isfile(extra):
                shutil.copy2(extra, os.path.join(staging, name))
            else:
                raise BundleError("--include %s: no such file or folder" % extra)
        with open(os.path.join(staging, "__main__.py"), "w", encoding="utf-8") as main:
            main.write(_MAIN_TEMPLATE.format(module=module))
        zipapp.create_archive(staging, output, interpreter=interpreter or None, compressed=compress)
    # zipapp sets the executable bits only when it writes a shebang; say it again for every user class
    # that may read the file, so that ./chat.pyz works for whoever may run python on it.
    if interpreter:
        mode = os.stat(output).st_mode
        os.chmod(output, mode | stat.S_IXUSR | (stat.S_IXGRP if mode & stat.S_IRGRP else 0)
                 | (stat.S_IXOTH if mode & stat.S_IROTH else 0))
    return output


def archive_of(path: str) -> Optional[str]:
    """The zip archive that ``path`` is or lies inside (``/srv/chat.pyz`` for ``/srv/chat.pyz/chat.py``).

    None when the first part of ``path`` that exists on disk is a folder or a
    file that is not a zip archive (a script run from a folder).
    """
    candidate = os.path.abspath(path)
    while not os.path.exists(candidate):
        parent = os.path.dirname(candidate)
        if parent == candidate:
            return None
        candidate = parent
    return candidate if os.path.isfile(candidate) and zipfile.is_zipfile(candidate) else None


def read_beside(anchor: str, name: str) -> bytes:
    """The bytes of the data file ``name`` that ships beside the module whose ``__file__`` is ``anchor``.

    Use it as ``read_beside(__file__, "index.html")``.  Run from a folder, it
    reads ``index.html`` next to the script; run from a bundle, it reads the
    member that ``--include index.html`` put beside the application in the
    archive.  ``name`` may contain ``/`` for a file in a sub-folder.  Raises
    :class:`FileNotFoundError` naming the place it looked in.
    """
    folder = os.path.dirname(os.path.abspath(anchor))
    archive = archive_of(folder)
    if archive is None:
        with open(os.path.join(folder, *name.split("/")), "rb") as stream:
            return stream.read()
    inner = os.path.relpath(folder, archive).replace(os.sep, "/")
    member = name if inner == "." else inner + "/" + name
    with zipfile.ZipFile(archive) as bundle:
        try:
            return bundle.read(member)
        except KeyError:
            raise FileNotFoundError("%s has no member %s (add it with --include when bundling)"
                                    % (archive, member)) from None


def deployment_dir(anchor: str) -> str:
    """The folder of the deployed file: the one holding the archive when bundled, else the script's.

    ``anchor`` is the caller's ``__file__``.  Files placed next to ``chat.pyz``
    on the server (configuration, certificates) are found with
    ``os.path.join(deployment_dir(__file__), "chat.ini")`` in both cases.
    """
    path = os.path.abspath(anchor)
    return os.path.dirname(archive_of(path) or path)


def add_arguments(command: argparse.ArgumentParser) -> None:
    """The options of ``python -m ratchet_sel bundle``."""
    command.add_argument("app", metavar="APP.py", nargs="?",
                         help="the application's main script; without it, the archive runs ratchet_sel's "
                              "own command line (python3 ratchet_sel.pyz chat --port 8000)")
    command.add_argument("-o", "--output", metavar="APP.pyz",
                         help="the archive to write (default: APP.pyz, or ratchet_sel.pyz, in the current folder)")
    command.add_argument("--python", default=DEFAULT_INTERPRETER, metavar="INTERPRETER",
                         help="the interpreter of the shebang line; '' for none (default: %(default)s)")
    command.add_argument("--compress", action="store_true",
                         help="deflate the archive's members (smaller, slightly slower to start)")
    command.add_argument("--include", action="append", default=[], metavar="PATH",
                         help="a file or folder to put beside the application in the archive "
                              "(repeatable); read it with ratchet_sel.bundle.read_beside")


def run(args: argparse.Namespace) -> int:
    """Build the bundle the parsed command line asks for; returns the exit status."""
    try:
        output = build_bundle(args.app, args.output, interpreter=args.python, compress=args.compress,
                              include=args.include)
    except (BundleError, OSError) as exc:
        log.error("bundle: %s", exc)
        return 1
    size = os.path.getsize(output)
    log.info("wrote %s (%d bytes); run it with: python3 %s", output, size, output)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m ratchet_sel.bundle APP.py -o APP.pyz``: the same as the ``bundle`` command."""
    parser = argparse.ArgumentParser(prog="python -m ratchet_sel bundle",
                                     description="build one executable zipapp of an application "
                                                 "and the ratchet_sel package")
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
