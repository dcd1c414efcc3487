"""The optional C accelerator: which WebSocket masking implementation runs.

``ratchet_sel/ops/_speedups.c`` (XOR masking, nothing else) is compiled by
``setup.py`` when a C compiler and Python's headers are present, and silently
left out when they are not.  The library never needs it: from a copied folder,
a zipapp or an install without a compiler, the pure-Python reference in
:mod:`ratchet_sel.websocket.rfc6455` runs and gives the same bytes.

Set ``RATCHET_SEL_NO_SPEEDUPS=1`` in the environment (before the import) to
force the pure-Python path even when the accelerator is built.
"""

import importlib
import os
from typing import Any, Optional, Tuple

__all__ = ["DISABLE_VARIABLE", "speedups", "enabled", "status"]

#: The environment variable that forces the pure-Python path when set to a value other than "" or "0".
DISABLE_VARIABLE = "RATCHET_SEL_NO_SPEEDUPS"


def _load() -> Tuple[Optional[Any], str]:
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        return None, "pure Python (%s is set)" % DISABLE_VARIABLE
    try:
        module = importlib.import_module("ratchet_sel.ops._speedups")
    except ImportError:
        return None, "pure Python (the C accelerator is not built)"
    return module, "C accelerator (%s)" % os.path.basename(getattr(module, "__file__", None) or "_speedups")


#: The compiled module (``apply_mask``, ``apply_mask_inplace``), or None when the pure path runs.
speedups, status = _load()
#: True when masking runs in C.
enabled = speedups is not None
