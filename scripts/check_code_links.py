#!/usr/bin/env python3
"""Keep the line anchors of links into the source right: [`Name`](../ratchet_sel/x.py#L42).

    python3 scripts/check_code_links.py          # exit 1 if a link points at the wrong line
    python3 scripts/check_code_links.py --fix    # rewrite the line numbers in place

Guides such as docs/how-it-works.md link each function they talk about with a
line anchor, which GitHub and most viewers open at the right line.  Line numbers
move whenever the code above them changes, so every such link names what it
points at: its text is the dotted name in backticks (``function``,
``Class``, ``Class.method``, optionally followed by ``()``).  This script
finds that definition with :mod:`ast` and checks (or, with ``--fix``, sets) the
line number.  A link whose name is not defined in that file is an error either way.

Scanned: README.md and docs/**/*.md, or the files given.  Exit status: 0 all
right (or fixed), 1 wrong or unknown targets, 2 a file that cannot be read.
"""

import argparse
import ast
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# [`Name.attr`](path/to/file.py#L12) or (... #L12-L20); the name may end in "()".
LINK = re.compile(r"\[`(?P<name>[A-Za-z_][\w.]*)(?:\(\))?`\]\((?P<path>[^)#\s]+\.py)#L(?P<line>\d+)(?P<rest>(?:-L\d+)?)\)")


def definitions(path: str) -> Dict[str, int]:
    """Dotted name -> line of every class and function defined in a module (nested ones too)."""
    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read(), filename=path)
    found: Dict[str, int] = {}

    def visit(body: List[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                # A decorated definition opens at its first decorator.
                line = min([node.lineno] + [d.lineno for d in node.decorator_list])
                found.setdefault(prefix + node.name, line)
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse, prefix)
    visit(tree.body, "")
    return found


def markdown_files(targets: Sequence[str]) -> List[str]:
    """README.md and docs/**/*.md, or the given files and folders."""
    targets = list(targets) or [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs")]
    found = []
    for target in targets:
        if os.path.isdir(target):
            for folder, dirs, files in os.walk(target):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(folder, name) for name in sorted(files) if name.endswith(".md"))
        else:
            found.append(target)
    return found


def check_file(path: str, fix: bool, cache: Dict[str, Dict[str, int]]) -> Tuple[List[str], int]:
    """(problems, links fixed) of one Markdown file; rewrites it when fixing."""
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    problems: List[str] = []
    fixed = 0
    base = os.path.dirname(os.path.abspath(path))

    def replace(match: "re.Match[str]") -> str:
        nonlocal fixed
        name, target, line = match.group("name"), match.group("path"), int(match.group("line"))
        where = "%s:%d" % (os.path.relpath(path, ROOT), text.count("\n", 0, match.start()) + 1)
        source = os.path.normpath(os.path.join(base, target))
        if source not in cache:
            try:
                cache[source] = definitions(source)
            except (OSError, SyntaxError) as exc:
                problems.append("%s: %s cannot be read: %s" % (where, target, exc))
                cache[source] = {}
        defined = cache[source]
        actual: Optional[int] = defined.get(name)
        if actual is None:
            problems.append("%s: %s defines no %s" % (where, target, name))
            return match.group(0)
        if actual == line:
            return match.group(0)
        if fix:
            fixed += 1
            return "[`%s%s`](%s#L%d)" % (name, "()" if "()" in match.group(0) else "", target, actual)
        problems.append("%s: %s is at %s#L%d, the link says L%d" % (where, name, target, actual, line))
        return match.group(0)

    new_text = LINK.sub(replace, text)
    if fix and new_text != text:
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(new_text)
    return problems, fixed


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check or fix; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="Markdown files or folders (default: README.md and docs/)")
    parser.add_argument("--fix", action="store_true", help="rewrite wrong line numbers in place")
    args = parser.parse_args(argv)
    cache: Dict[str, Dict[str, int]] = {}
    problems: List[str] = []
    fixed = links = 0
    try:
        for path in markdown_files(args.targets):
            with open(path, encoding="utf-8") as stream:
                links += len(LINK.findall(stream.read()))
            found, count = check_file(path, args.fix, cache)
            problems += found
            fixed += count
    except (OSError, UnicodeDecodeError) as exc:
        print("check_code_links: %s" % exc, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    print("%d link(s) into the source checked%s; %d problem(s)" % (
        links, ", %d line number(s) fixed" % fixed if args.fix else "", len(problems)))
    if problems and not args.fix:
        print("run python3 scripts/check_code_links.py --fix to set the line numbers", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
