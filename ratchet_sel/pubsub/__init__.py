"""Publish/subscribe: topics of connections, in one process or spanning many.

- :class:`Topics`: the in-process hub (no dependency).
- :class:`Backplane`: what spans a hub across processes (the worker master's
  hub, Redis); see :mod:`ratchet_sel.pubsub.topics`.
- :class:`Publication` and the wire form in :mod:`ratchet_sel.pubsub.envelope`.
"""

from .envelope import Publication
from .topics import Backplane, Topics, subscriber_key

__all__ = ["Topics", "Backplane", "Publication", "subscriber_key"]
