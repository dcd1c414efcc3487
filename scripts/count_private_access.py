#!/usr/bin/env python3
"""Count the reads and writes of another object's private attributes in ratchet_sel/.

An access counts when it names an attribute with one leading underscore (``_x``,
not a dunder such as ``__init__``) on something other than the names ``self``,
``cls`` or a bare ``super()`` call:

    other._x      conn._state = ...      self.server._report_error(...)
    module._helper(...)                  getattr(obj, "_x")  (and setattr, hasattr, delattr)

``self._x`` does not count: an object may use its own private state.

Each access is given one scope, from where the accessing code lives to where the
attribute is defined (a package is a directory ``ratchet_sel/<pkg>/``; the top-level
modules form the package ``ratchet_sel``):

    within a module   the attribute is defined in the module that reads it
    across modules    it is defined in another module of the same package
    across packages   it is defined in another package, or outside ratchet_sel
                      (a private name of the standard library, for instance)

"Defined" means: assigned as ``self._x``/``cls._x``, assigned or declared (``def``,
``class``, ``__slots__``) in a class body, or assigned/declared at module level. For
``obj._x`` the type of ``obj`` is unknown, so the owner is found by the attribute's
name; when several modules define it, the nearest one is taken (this module, then
this package, then another package): a guess that can move an access to a nearer
scope, never in or out of the total. For ``module._x`` where ``module`` is a name
bound by an import, the imported module is the owner, and the access is never
"within a module".

Same class (not in the total): inside a method of class C, ``other._x`` where C itself
defines ``_x`` (``self._x = ...``, ``__slots__``, or a ``def``/assignment in C's body)
is C's own code reading its own kind of object, as ``other._seq`` in ``__lt__``: that is
encapsulation, not a breach. These are counted and printed apart, and excluded from the
total and from ``--max``. The test is by name, so one case is told apart by annotation: when
``other`` is a parameter annotated with another class (``def __init__(self, server:
"IoServer")``), ``server._x`` is that class's attribute, even if C has an ``_x`` too, and
the module defining that class is taken as the owner.

Documented standard-library names (not in the total): ``os._exit`` is the documented
way for a forked child to end without running its parent's cleanup; its underscore is
historical, not a mark of privacy. It is listed apart, like the same-class accesses.

Usage:
    python3 scripts/count_private_access.py [--list] [--max N] [--no-cross-package] [ROOT]

Exit status 1 when ``--max`` is exceeded or ``--no-cross-package`` finds one; else 0.
"""

import argparse
import ast
import os
import sys
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple, Union

WITHIN_MODULE = "within a module"
ACROSS_MODULES = "across modules"
ACROSS_PACKAGES = "across packages"
SAME_CLASS = "same class"
DOCUMENTED_NAME = "documented stdlib name"
COUNTED_SCOPES = (WITHIN_MODULE, ACROSS_MODULES, ACROSS_PACKAGES)
UNCOUNTED_SCOPES = (SAME_CLASS, DOCUMENTED_NAME)

# Standard-library functions whose documented public name starts with an underscore.
DOCUMENTED_STDLIB_NAMES = frozenset(("os._exit",))

# Names through which an object reaches its own attributes.
OWN_NAMES = frozenset(("self", "cls"))
ATTRIBUTE_BUILTINS = frozenset(("getattr", "setattr", "hasattr", "delattr"))


def is_private(name: str) -> bool:
    """One leading underscore, and not a dunder (``__x__``) or a mangled ``__x``."""
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


class Access(NamedTuple):
    """One private access found in the source."""

    path: str  # relative to the root's parent, e.g. ratchet_sel/wamp/topic.py
    line: int
    expr: str  # the source text of the access, e.g. "conn._state"
    scope: str


class Module:
    """One parsed source file and what it defines."""

    def __init__(self, path: str, source: str) -> None:
        self.path = path  # e.g. ratchet_sel/wamp/topic.py, "/"-separated
        self.source = source
        self.tree = ast.parse(source, filename=path)
        parts = path[: -len(".py")].split("/")
        self.is_package = parts[-1] == "__init__"
        if self.is_package:
            parts.pop()
        self.dotted = ".".join(parts)  # e.g. ratchet_sel.wamp.topic
        # ratchet_sel/wamp/topic.py is in ratchet_sel.wamp; ratchet_sel/app.py in ratchet_sel.
        folders = path.split("/")[:-1]
        self.package = ".".join(folders[:2])
        self.defined = private_names_defined(self.tree)
        self.classes = {node.name for node in ast.walk(self.tree) if isinstance(node, ast.ClassDef)}


def private_names_defined(tree: ast.Module) -> Set[str]:
    """Every private name this module defines: at module level, in a class, or on self/cls.

    Local variables of functions are not definitions an object could be asked for.
    """
    names: Set[str] = set()
    names.update(names_bound_in_body(tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            names.update(names_bound_in_body(node.body))
            names.update(slots_of(node))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in OWN_NAMES
        ):
            names.add(node.attr)
    return {name for name in names if is_private(name)}


def names_bound_in_body(body: List[ast.stmt]) -> Set[str]:
    """Names a module or class body binds directly: def, class, assignment, import."""
    names: Set[str] = set()
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in stmt.names)
        elif isinstance(stmt, (ast.If, ast.Try)):
            # Definitions under "if TYPE_CHECKING:" or "try: import x" are still module-level.
            inner = list(stmt.body) + list(stmt.orelse)
            if isinstance(stmt, ast.Try):
                inner += list(stmt.finalbody)
                for handler in stmt.handlers:
                    inner += handler.body
            names.update(names_bound_in_body(inner))
    return names


def slots_of(cls: ast.ClassDef) -> Set[str]:
    """The string constants of a ``__slots__ = (...)`` in the class body."""
    slots: Set[str] = set()
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__slots__" for target in stmt.targets
        ):
            for const in ast.walk(stmt.value):
                if isinstance(const, ast.Constant) and isinstance(const.value, str):
                    slots.add(const.value)
    return slots


def names_of_class(cls: ast.ClassDef) -> Set[str]:
    """What a class defines for its instances: self.<attr> assignments, __slots__, its body."""
    names = slots_of(cls) | names_bound_in_body(cls.body)
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return names


def read_sources(root: str) -> Dict[str, str]:
    """Every .py file under root (a package directory): "/"-separated path from root's parent -> text."""
    root = os.path.abspath(root)
    base = os.path.dirname(root)
    sources: Dict[str, str] = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith((".", "__pycache__")))
        for name in sorted(files):
            if name.endswith(".py"):
                full = os.path.join(directory, name)
                with open(full, encoding="utf-8") as source:
                    sources[os.path.relpath(full, base).replace(os.sep, "/")] = source.read()
    return sources


def imported_modules(module: Module, known: Dict[str, Module]) -> Dict[str, str]:
    """Local names bound to modules by imports: name -> dotted module name.

    A module outside the scanned root (``os``, ``ssl``) maps to its own dotted name, so
    that ``ssl._create_default_https_context`` is seen as another package's private name.
    """
    bound: Dict[str, str] = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.dotted.split(".")
                keep = len(parts) - node.level + (1 if module.is_package else 0)
                base = ".".join(parts[:keep])
                source = base + "." + node.module if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = source + "." + alias.name
                if candidate in known:
                    bound[alias.asname or alias.name] = candidate
    return bound


class AccessFinder(ast.NodeVisitor):
    """Walks one module, keeping the enclosing class, and records each private access."""

    def __init__(self, module: Module, modules: Dict[str, Module]) -> None:
        self.module = module
        self.modules = modules
        self.imports = imported_modules(module, modules)
        self.classes: List[Tuple[str, Set[str]]] = []  # each enclosing class: its name, what it defines
        self.annotations: List[Dict[str, str]] = []  # each enclosing function: parameter -> class named
        self.found: List[Access] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append((node.name, names_of_class(node)))
        self.generic_visit(node)
        self.classes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.annotations.append(parameter_classes(node))
        self.generic_visit(node)
        self.annotations.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if is_private(node.attr) and not reaches_itself(node.value):
            self.record(node, node.value, node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in ATTRIBUTE_BUILTINS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
            and not reaches_itself(node.args[0])
        ):
            self.record(node, node.args[0], node.args[1].value)
        self.generic_visit(node)

    def record(self, node: ast.expr, owner: ast.expr, attr: str) -> None:
        expr = ast.get_source_segment(self.module.source, node) or attr
        expr = " ".join(expr.split())
        if len(expr) > 70:
            expr = expr[:67] + "..."
        self.found.append(Access(self.module.path, node.lineno, expr, self.scope_of(owner, attr)))

    def scope_of(self, owner: ast.expr, attr: str) -> str:
        """Where ``owner.<attr>`` reaches, seen from this module (see the module docstring)."""
        if isinstance(owner, ast.Name) and owner.id in self.imports:
            target = self.imports[owner.id]
            if target + "." + attr in DOCUMENTED_STDLIB_NAMES:
                return DOCUMENTED_NAME
            target_module = self.modules.get(target)
            if target_module is not None and target_module.package == self.module.package:
                return ACROSS_MODULES
            return ACROSS_PACKAGES
        annotated = self.annotated_class(owner)
        if self.classes and attr in self.classes[-1][1] and annotated in (None, self.classes[-1][0]):
            return SAME_CLASS
        if annotated is not None:
            owners = [m for m in self.modules.values() if annotated in m.classes]
            if owners:
                return self.nearest(owners)
        return self.nearest([m for m in self.modules.values() if attr in m.defined])

    def nearest(self, owners: List[Module]) -> str:
        """The scope of the nearest of the modules that may own an attribute."""
        if self.module in owners:
            return WITHIN_MODULE
        if any(owner.package == self.module.package for owner in owners):
            return ACROSS_MODULES
        return ACROSS_PACKAGES

    def annotated_class(self, owner: ast.expr) -> Optional[str]:
        """The class ``owner`` is annotated with, when it is a parameter of the enclosing function."""
        if not isinstance(owner, ast.Name) or not self.annotations:
            return None
        return self.annotations[-1].get(owner.id)

    def run(self) -> List[Access]:
        """Visit the module once; the accesses found, in source order."""
        self.visit(self.module.tree)
        return sorted(self.found, key=lambda access: access.line)


def parameter_classes(function: Union[ast.FunctionDef, ast.AsyncFunctionDef]) -> Dict[str, str]:
    """Parameters annotated with a class name (``x: Name``, ``x: "Name"``, ``x: mod.Name``)."""
    arguments = function.args
    classes: Dict[str, str] = {}
    for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs:
        annotation = arg.annotation
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            classes[arg.arg] = annotation.value.rpartition(".")[2]
        elif isinstance(annotation, ast.Name) and annotation.id != "Any":
            classes[arg.arg] = annotation.id
        elif isinstance(annotation, ast.Attribute):
            classes[arg.arg] = annotation.attr
    return classes


def reaches_itself(value: ast.expr) -> bool:
    """True for ``self``, ``cls`` and ``super()``: an object using its own attributes."""
    if isinstance(value, ast.Name):
        return value.id in OWN_NAMES
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def find_accesses(sources: Dict[str, str]) -> List[Access]:
    """Every private access in the given sources (path -> text), in path and line order."""
    modules = {module.dotted: module for module in (Module(path, text) for path, text in sources.items())}
    found: List[Access] = []
    for module in sorted(modules.values(), key=lambda m: m.path):
        found.extend(AccessFinder(module, modules).run())
    return found


def summary(accesses: List[Access]) -> Tuple[int, str]:
    """The total (same class and documented names left out) and the summary line."""
    counts = {scope: 0 for scope in COUNTED_SCOPES + UNCOUNTED_SCOPES}
    for access in accesses:
        counts[access.scope] += 1
    total = sum(counts[scope] for scope in COUNTED_SCOPES)
    counted = ", ".join("%s %d" % (scope, counts[scope]) for scope in COUNTED_SCOPES)
    uncounted = ", ".join("%s %d" % (scope, counts[scope]) for scope in UNCOUNTED_SCOPES)
    return total, "private accesses: %d (%s); not counted: %s" % (total, counted, uncounted)


def format_list(accesses: List[Access]) -> Iterator[str]:
    """One line per access: ``path:line  expr  [scope]``."""
    for access in accesses:
        yield "%s:%d  %s  [%s]" % (access.path, access.line, access.expr, access.scope)


def main(argv: Optional[List[str]] = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ratchet_sel")
    parser.add_argument("root", nargs="?", default=default_root, help="the package directory")
    parser.add_argument("--list", action="store_true", help="print every access")
    parser.add_argument("--max", type=int, default=None, help="exit 1 when the total is above N")
    parser.add_argument(
        "--no-cross-package", action="store_true", help="exit 1 when an access crosses packages"
    )
    args = parser.parse_args(argv)

    accesses = find_accesses(read_sources(args.root))
    if args.list:
        for line in format_list(accesses):
            print(line)
    total, line = summary(accesses)
    print(line)

    status = 0
    if args.max is not None and total > args.max:
        print("more than %d private accesses" % args.max, file=sys.stderr)
        status = 1
    crossing = sum(1 for access in accesses if access.scope == ACROSS_PACKAGES)
    if args.no_cross_package and crossing:
        print("%d private accesses cross a package" % crossing, file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
