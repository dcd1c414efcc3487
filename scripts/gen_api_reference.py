#!/usr/bin/env python3
"""Write docs/api.md, the API reference, from the docstrings of the ratchet_sel package.

    python3 scripts/gen_api_reference.py            # (re)write docs/api.md
    python3 scripts/gen_api_reference.py --check    # exit 1 when docs/api.md is stale

Every module of the package is found by walking ``ratchet_sel/`` (a module or
package whose name has no part starting with ``_`` is public), so a module added
tomorrow appears without touching this script.  A module's public names are its
``__all__``; without ``__all__``, its top-level classes and functions whose names
do not start with ``_``.

The reference is read from the source with the stdlib :mod:`ast` rather than by
importing the modules: signatures appear as their authors wrote them (the text of
annotations and defaults), so the output is the same on every Python version and
for modules whose optional dependencies are not installed; nothing runs.

Exit status: 0 written or up to date, 1 stale (with a diff and the command that
fixes it), 2 a module cannot be read (named, with the reason).
"""

import argparse
import ast
import difflib
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "ratchet_sel"
DEFAULT_OUTPUT = os.path.join("docs", "api.md")
COMMAND = "python3 scripts/gen_api_reference.py"


class SourceError(Exception):
    """A module that cannot be parsed."""


def discover(root: str = ROOT, package: str = PACKAGE) -> List[Tuple[str, str]]:
    """(dotted module name, path relative to root) of every public module, package first, sorted."""
    found = []
    base = os.path.join(root, package)
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs
                         if not d.startswith(("_", ".")) and os.path.isfile(os.path.join(folder, d, "__init__.py")))
        relative = os.path.relpath(folder, root)
        dotted = relative.replace(os.sep, ".")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            if name == "__init__.py":
                found.append((dotted, os.path.join(relative, name)))
            elif not name.startswith("_"):
                found.append((dotted + "." + name[:-3], os.path.join(relative, name)))
    return sorted(found, key=lambda item: item[0].split("."))


# -- rendering docstrings -------------------------------------------------------------------------

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`~?([^`]+)`")
_DOUBLE_BACKTICKS = re.compile(r"``(.+?)``", re.S)


def _markdown(text: str, known: Dict[str, str]) -> str:
    """A docstring (reST-flavoured) as Markdown: roles become links, literal blocks stay code."""
    # A ``literal`` may wrap onto the next line of its paragraph: convert those before splitting lines.
    text = _DOUBLE_BACKTICKS.sub(lambda m: "`%s`" % m.group(1) if "\n\n" not in m.group(1) else m.group(0), text)
    out = []
    in_literal = False
    for line in text.splitlines():
        if in_literal and line.strip() and not line.startswith("    "):
            in_literal = False
        if in_literal:
            out.append(line)
            continue
        if line.rstrip().endswith("::"):
            in_literal = True
            stripped = line.rstrip()[:-1]
            line = stripped if stripped.strip() != ":" else ""
        out.append(_inline(line, known))
    return "\n".join(out).strip()


def _inline(line: str, known: Dict[str, str]) -> str:
    def role(match: "re.Match[str]") -> str:
        target = match.group(1)
        short = target.rsplit(".", 1)[-1]
        anchor = known.get(target) or known.get(PACKAGE + "." + target) or _by_short_name(short, known)
        return "[`%s`](#%s)" % (short, anchor) if anchor else "`%s`" % short

    line = _ROLE.sub(role, line)
    line = _DOUBLE_BACKTICKS.sub(lambda m: "`%s`" % m.group(1), line)
    # Outside code spans, < and > would read as HTML to a Markdown renderer.
    parts = line.split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _by_short_name(short: str, known: Dict[str, str]) -> Optional[str]:
    matches = sorted(anchor for name, anchor in known.items() if name.rsplit(".", 1)[-1] == short)
    return matches[0] if len(matches) == 1 else None


# -- reading a module -----------------------------------------------------------------------------

_LINES: Dict[str, List[str]] = {}


def _segment(source: str, node: Optional[ast.AST]) -> str:
    """The source text of ``node`` on one line (ast.get_source_segment re-splits the file on every call)."""
    if node is None:
        return ""
    lines = _LINES.get(source)
    if lines is None:
        lines = _LINES[source] = source.splitlines(keepends=True)
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[attr-defined]
    start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
    # Offsets count UTF-8 bytes, as the parser does.
    if first == last:
        text = lines[first].encode("utf-8")[start:end].decode("utf-8")
    else:
        text = (lines[first].encode("utf-8")[start:].decode("utf-8") + "".join(lines[first + 1:last])
                + lines[last].encode("utf-8")[:end].decode("utf-8"))
    return " ".join(text.split())


def _signature(source: str, func: ast.AST, drop_first: bool) -> str:
    assert isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
    args = func.args
    positional = list(args.posonlyargs) + list(args.args)
    defaults: List[Optional[ast.expr]] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parts = []

    def one(arg: ast.arg, default: Optional[ast.expr], star: str = "") -> str:
        text = star + arg.arg
        if arg.annotation is not None:
            text += ": " + _segment(source, arg.annotation)
        if default is not None:
            text += (" = " if arg.annotation is not None else "=") + _segment(source, default)
        return text

    for index, (arg, default) in enumerate(zip(positional, defaults)):
        if index == 0 and drop_first:
            continue
        parts.append(one(arg, default))
        if args.posonlyargs and arg is args.posonlyargs[-1]:
            parts.append("/")
    if args.vararg is not None:
        parts.append(one(args.vararg, None, "*"))
    elif args.kwonlyargs:
        parts.append("*")
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
        parts.append(one(arg, kw_default))
    if args.kwarg is not None:
        parts.append(one(args.kwarg, None, "**"))
    result = "(%s)" % ", ".join(parts)
    if func.returns is not None:
        result += " -> " + _segment(source, func.returns)
    return result


def _decorators(source: str, node: ast.AST) -> List[str]:
    return [_segment(source, d) for d in getattr(node, "decorator_list", [])]


def _comment_doc(lines: List[str], lineno: int) -> str:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), joined."""
    found = []
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.append(lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(reversed(found))


def _short_value(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Module:
    """What the reference shows of one module, read from its source."""

    def __init__(self, name: str, path: str, root: str = ROOT) -> None:
        self.name = name
        self.path = path.replace(os.sep, "/")
        with open(os.path.join(root, path), encoding="utf-8") as stream:
            self.source = stream.read()
        try:
            self.tree = ast.parse(self.source, filename=path)
        except SyntaxError as exc:
            raise SourceError("%s: cannot parse: %s" % (path, exc)) from None
        self.lines = self.source.splitlines()
        self.doc = ast.get_docstring(self.tree) or ""
        self.defined: Dict[str, ast.AST] = {}
        self.imported: Dict[str, str] = {}   # local name -> "module.Name" it comes from
        self.all: Optional[List[str]] = None
        is_package = path.endswith("__init__.py")
        for node in self._top_level(self.tree.body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        if target.id == "__all__" and node.value is not None:
                            try:
                                self.all = list(ast.literal_eval(node.value))
                            except ValueError:
                                raise SourceError("%s: __all__ must be a literal list of names" % path) from None
                        else:
                            self.defined[target.id] = node
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                origin = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = origin + "." + alias.name

    @staticmethod
    def _top_level(body: List[ast.stmt]) -> List[ast.stmt]:
        """The module's statements, including those inside top-level if/try blocks (optional imports)."""
        found: List[ast.stmt] = []
        for node in body:
            found.append(node)
            if isinstance(node, ast.If):
                found.extend(Module._top_level(node.body + node.orelse))
            elif isinstance(node, ast.Try):
                nested = node.body + node.orelse + node.finalbody
                for handler in node.handlers:
                    nested += handler.body
                found.extend(Module._top_level(nested))
        return found

    def public_names(self) -> List[str]:
        """``__all__``, or the public classes and functions defined here, in source order."""
        if self.all is not None:
            return self.all
        return [name for name, node in self.defined.items()
                if not name.startswith("_") and isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]


def _anchor(dotted: str) -> str:
    return dotted.replace(".", "-")


def _resolve(full: str, modules: Dict[str, Module], depth: int = 0) -> Optional[str]:
    """The dotted name where ``full`` (``module.Name``) is defined, following re-exports."""
    module_name, _, name = full.rpartition(".")
    module = modules.get(module_name)
    if module is None or depth > 10:
        return None
    if name in module.defined:
        return full
    if name in module.imported:
        return _resolve(module.imported[name], modules, depth + 1)
    return None


_MODULES: Dict[str, Module] = {}


def _base_classes(module: Module, node: ast.ClassDef) -> List[Tuple[str, Module, ast.ClassDef]]:
    """(dotted name, module, class node) of the bases of ``node`` that are classes of the package."""
    found = []
    for base in node.bases:
        text = _segment(module.source, base)
        if "." in text or "[" in text:
            continue
        target = "%s.%s" % (module.name, text) if text in module.defined else module.imported.get(text)
        target = _resolve(target, _MODULES) if target else None
        if target is None:
            continue
        owner = _MODULES[target.rpartition(".")[0]]
        class_node = owner.defined.get(target.rpartition(".")[2])
        if isinstance(class_node, ast.ClassDef):
            found.append((target, owner, class_node))
    return found


def _inherited_doc(module: Module, node: ast.ClassDef, method: str, depth: int = 0) -> Optional[Tuple[str, str]]:
    """(dotted name of the method, its docstring) from the nearest base of the package that documents it."""
    if depth > 10:
        return None
    for dotted, owner, base in _base_classes(module, node):
        for item in base.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == method:
                doc = ast.get_docstring(item)
                if doc:
                    return "%s.%s" % (dotted, method), doc
        found = _inherited_doc(owner, base, method, depth + 1)
        if found:
            return found
    return None


def _render_function(out: List[str], module: Module, node: ast.AST, title: str, level: str, dotted: str,
                     known: Dict[str, str], drop_first: bool = False, prefix: str = "",
                     owner: Optional[ast.ClassDef] = None) -> None:
    out.append('<a id="%s"></a>' % _anchor(dotted))
    out.append("%s %s`%s`" % (level, prefix, title))
    out.append("")
    out.append("`%s%s`" % (title, _signature(module.source, node, drop_first)))
    doc = ast.get_docstring(node)  # type: ignore[arg-type]
    out.append("")
    if doc:
        out.append(_markdown(doc, known))
    else:
        inherited = _inherited_doc(module, owner, title.rpartition(".")[2]) if owner is not None else None
        if inherited:
            name, text = inherited
            short = ".".join(name.split(".")[-2:])
            out.append("Implements [`%s`](#%s): %s" % (short, _anchor(name), _markdown(text, known)))
        else:
            out.append("*(no docstring)*")
    out.append("")


def _render_class(out: List[str], module: Module, node: ast.ClassDef, dotted: str, known: Dict[str, str]) -> None:
    bases = [_segment(module.source, base) for base in node.bases]
    out.append('<a id="%s"></a>' % _anchor(dotted))
    out.append("### class `%s`" % node.name)
    out.append("")
    init = next((item for item in node.body
                 if isinstance(item, ast.FunctionDef) and item.name == "__init__"), None)
    signature = _signature(module.source, init, True).split(" -> ")[0] if init is not None else ""
    line = "`%s%s`" % (node.name, signature)
    if bases:
        line += " &nbsp; (bases: %s)" % ", ".join("`%s`" % base for base in bases)
    out.append(line)
    out.append("")
    doc = ast.get_docstring(node)
    out.append(_markdown(doc, known) if doc else "*(no docstring)*")
    out.append("")
    if init is not None and ast.get_docstring(init):
        out.append(_markdown(ast.get_docstring(init) or "", known))
        out.append("")
    attributes = []
    for item in node.body:
        if isinstance(item, (ast.Assign, ast.AnnAssign)):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            for target in targets:
                if isinstance(target, ast.Name) and not target.id.startswith("_"):
                    value = _segment(module.source, item.value) if item.value is not None else ""
                    note = _comment_doc(module.lines, item.lineno)
                    text = "- `%s%s`" % (target.id, " = " + _short_value(value) if value else "")
                    attributes.append(text + (": " + _inline(note, known) if note else ""))
    if attributes:
        out.append("Class attributes:")
        out.append("")
        out.extend(attributes)
        out.append("")
    for item in node.body:
        if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) or item.name.startswith("_"):
            continue
        decorators = _decorators(module.source, item)
        if any(d.endswith((".setter", ".deleter")) for d in decorators):
            continue
        member = "%s.%s" % (dotted, item.name)
        if "property" in decorators:
            settable = any(d == "%s.setter" % item.name for other in node.body
                           for d in _decorators(module.source, other))
            out.append('<a id="%s"></a>' % _anchor(member))
            out.append("#### property `%s.%s`%s" % (node.name, item.name, " (settable)" if settable else ""))
            out.append("")
            if item.returns is not None:
                out.append("`%s: %s`" % (item.name, _segment(module.source, item.returns)))
                out.append("")
            doc = ast.get_docstring(item)
            out.append(_markdown(doc, known) if doc else "*(no docstring)*")
            out.append("")
            continue
        kind = "staticmethod " if "staticmethod" in decorators else "classmethod " if "classmethod" in decorators else ""
        _render_function(out, module, item, "%s.%s" % (node.name, item.name), "####", member, known,
                         drop_first=kind != "staticmethod ", prefix=kind, owner=node)


def generate(root: str = ROOT) -> str:
    """The whole reference as Markdown."""
    modules: Dict[str, Module] = {}
    for name, path in discover(root):
        modules[name] = Module(name, path, root)
    known: Dict[str, str] = {}
    _MODULES.clear()
    _MODULES.update(modules)
    for module in modules.values():
        known[module.name] = _anchor(module.name)
        for name in module.public_names():
            if name in module.defined:
                known["%s.%s" % (module.name, name)] = _anchor("%s.%s" % (module.name, name))
    for module in modules.values():
        for name in module.public_names():
            if name not in module.defined and name in module.imported:
                target = _resolve(module.imported[name], modules)
                if target and target in known:
                    known.setdefault("%s.%s" % (module.name, name), known[target])

    out = ["# API reference", "",
           "<!-- Generated by `%s` from the package's docstrings: do not edit by hand. -->" % COMMAND, "",
           "Every public module of `%s`, its public names (`__all__`) and their docstrings, read from the "
           "source. Regenerate with `%s`; CI runs it with `--check`. Guides: [the tutorial](tutorial/) and "
           "[how it works](how-it-works.md)." % (PACKAGE, COMMAND), "",
           "## Modules", ""]
    for module in modules.values():
        summary = module.doc.strip().splitlines()[0] if module.doc.strip() else ""
        out.append("- [`%s`](#%s)%s" % (module.name, _anchor(module.name),
                                         " — " + _inline(summary, known) if summary else ""))
    out.append("")
    for module in modules.values():
        out.append('<a id="%s"></a>' % _anchor(module.name))
        out.append("## `%s`" % module.name)
        out.append("")
        out.append("Source: [`%s`](../%s)" % (module.path, module.path))
        out.append("")
        if module.doc:
            out.append(_markdown(module.doc, known))
            out.append("")
        reexports = []
        for name in module.public_names():
            node = module.defined.get(name)
            dotted = "%s.%s" % (module.name, name)
            if node is None:
                origin = module.imported.get(name)
                target = _resolve(origin, modules) if origin else None
                # A name from outside the package (or made at run time) is listed without a link.
                reexports.append("[`%s`](#%s)" % (name, _anchor(target)) if target else "`%s`" % name)
            elif isinstance(node, ast.ClassDef):
                _render_class(out, module, node, dotted, known)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                _render_function(out, module, node, name, "###", dotted, known,
                                 prefix="async " if isinstance(node, ast.AsyncFunctionDef) else "")
            else:
                value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
                note = _comment_doc(module.lines, getattr(node, "lineno", 1))
                out.append('<a id="%s"></a>' % _anchor(dotted))
                out.append("### `%s`" % name)
                out.append("")
                out.append("`%s = %s`" % (name, _short_value(_segment(module.source, value))))
                out.append("")
                if note:
                    out.append(_inline(note, known))
                    out.append("")
        if reexports:
            out.append("Also exported here: %s." % ", ".join(reexports))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write or check the reference; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the checked-in file instead of writing it; exit 1 when it differs")
    parser.add_argument("--output", default=os.path.join(ROOT, DEFAULT_OUTPUT),
                        help="where the reference goes (default: %s)" % DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    try:
        text = generate()
    except (SourceError, OSError) as exc:
        print("gen_api_reference: %s" % exc, file=sys.stderr)
        return 2
    if not args.check:
        with open(args.output, "w", encoding="utf-8") as stream:
            stream.write(text)
        print("wrote %s (%d lines)" % (os.path.relpath(args.output), text.count("\n")))
        return 0
    try:
        with open(args.output, encoding="utf-8") as stream:
            current = stream.read()
    except FileNotFoundError:
        print("gen_api_reference: %s does not exist; run %s and commit it" % (args.output, COMMAND),
              file=sys.stderr)
        return 1
    if current == text:
        print("%s is up to date" % os.path.relpath(args.output))
        return 0
    diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), "checked-in " + DEFAULT_OUTPUT,
                                     "generated from the source", lineterm="", n=1))
    print("gen_api_reference: %s is stale (the docstrings or public names changed); run %s and commit "
          "the result. Difference (first 80 lines):" % (DEFAULT_OUTPUT, COMMAND), file=sys.stderr)
    print("\n".join(diff[:80]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
