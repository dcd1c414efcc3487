"""Shared pytest setup for the ratchet_sel tests.

Keep this file small: reusable helpers live in ``tests/support.py``
(``from support import ServerThread, Recorder``).
"""

import os
import sys

_TESTS = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_TESTS)

# Make ``import ratchet_sel`` work from a checkout without installing, and
# ``import support`` work whatever the import mode.
for _path in (_ROOT, _TESTS):
    if _path not in sys.path:
        sys.path.insert(0, _path)
