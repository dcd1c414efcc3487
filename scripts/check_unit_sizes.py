#!/usr/bin/env python3
"""List the functions and classes of ratchet_sel/ that are longer than a reader can hold.

A unit's length is its lines from ``def``/``class`` to its last line, docstring and
comments included (decorators excluded). Methods are named ``Class.method``; a function
nested in another is named ``outer.inner`` and measured on its own (it also counts
inside its parent).

Usage:
    python3 scripts/check_unit_sizes.py [--max-function 80] [--max-class 350] [ROOT]

Prints each unit over its limit (``path:line  name  N lines``) and a summary line;
exits 1 when one is found that is not in ALLOWED.
"""

import argparse
import ast
import os
import sys
from typing import Iterator, List, NamedTuple, Optional, Tuple

#: Units kept long on purpose. FrameParser.feed is the per-frame hot loop of the
#: RFC 6455 parser: each helper call it made would be paid on every frame (see the
#: comment in FrameParser.feed, ratchet_sel/websocket/rfc6455.py), and the class is
#: kept whole around it.
ALLOWED = frozenset((
    "ratchet_sel/websocket/rfc6455.py:FrameParser",
    "ratchet_sel/websocket/rfc6455.py:FrameParser.feed",
))


class Unit(NamedTuple):
    """One function or class and its length in lines."""

    path: str
    line: int
    name: str
    kind: str  # "function" or "class"
    length: int

    @property
    def key(self) -> str:
        """``path:name``, as written in ALLOWED."""
        return "%s:%s" % (self.path, self.name)


def units(path: str, source: str) -> Iterator[Unit]:
    """Every function and class of one module, with qualified names."""
    tree = ast.parse(source, filename=path)

    def walk(node: ast.AST, prefix: str) -> Iterator[Unit]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                yield Unit(path, child.lineno, name, kind, length)
                yield from walk(child, name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def long_units(root: str, max_function: int, max_class: int) -> List[Unit]:
    """The units under root (a package directory) longer than their limit, by path and line."""
    root = os.path.abspath(root)
    base = os.path.dirname(root)
    found: List[Unit] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            full = os.path.join(directory, name)
            path = os.path.relpath(full, base).replace(os.sep, "/")
            with open(full, encoding="utf-8") as source:
                for unit in units(path, source.read()):
                    limit = max_class if unit.kind == "class" else max_function
                    if unit.length > limit:
                        found.append(unit)
    return sorted(found, key=lambda unit: (unit.path, unit.line))


def report(found: List[Unit]) -> Tuple[int, List[str]]:
    """The number of units over their limit and not allowed, and the lines to print."""
    lines = []
    refused = 0
    for unit in found:
        allowed = unit.key in ALLOWED
        refused += not allowed
        lines.append("%s:%d  %s  %d lines%s" % (
            unit.path, unit.line, unit.name, unit.length, "  (allowed)" if allowed else ""))
    lines.append("long units: %d over the limits, %d allowed" % (refused, len(found) - refused))
    return refused, lines


def main(argv: Optional[List[str]] = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ratchet_sel")
    parser.add_argument("root", nargs="?", default=default_root, help="the package directory")
    parser.add_argument("--max-function", type=int, default=80, help="most lines in a function")
    parser.add_argument("--max-class", type=int, default=350, help="most lines in a class")
    args = parser.parse_args(argv)
    refused, lines = report(long_units(args.root, args.max_function, args.max_class))
    print("\n".join(lines))
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
