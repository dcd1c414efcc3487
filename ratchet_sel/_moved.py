"""The import paths of modules that moved into packages keep working.

Wave 3 gave the flat top level a layout (``io/``, ``server/``, ``ops/``,
``workers/``).  Code written against the old paths (``ratchet_sel.loop``,
``ratchet_sel.metrics``, ...) still imports: a finder
on ``sys.meta_path`` answers each old name with the module at its new home,
the same module object, imported only when asked for.  (``ratchet_sel.server``
is now the decorators' package; it answers the old names of
:mod:`ratchet_sel.io.listener` itself.)
"""

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any, Optional, Sequence

#: Old module path -> where the module lives now.
MOVED = {
    "ratchet_sel.loop": "ratchet_sel.io.loop",
    "ratchet_sel.guard": "ratchet_sel.server.guard",
    "ratchet_sel.origin": "ratchet_sel.server.origin",
    "ratchet_sel.blacklist": "ratchet_sel.server.blacklist",
    "ratchet_sel.proxy": "ratchet_sel.server.proxy",
    "ratchet_sel.flash": "ratchet_sel.server.flash",
    "ratchet_sel.addresses": "ratchet_sel.server.addresses",
    "ratchet_sel.metrics": "ratchet_sel.ops.metrics",
    "ratchet_sel.stats": "ratchet_sel.ops.stats",
    "ratchet_sel.bundle": "ratchet_sel.ops.bundle",
    "ratchet_sel.accelerator": "ratchet_sel.ops.accelerator",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path of :data:`MOVED` and loads it as the module at its new path."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Any:
        """A spec for an old path, or None for every other name."""
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        """The module at the new path (imported now if it was not yet)."""
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system is about to stamp the old name's spec on it
        return module

    def exec_module(self, module: Any) -> None:
        """Nothing to run (the new module ran when it was imported): give the module its own spec back."""
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


install()
