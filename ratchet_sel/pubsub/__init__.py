"""Publish/subscribe: topics of connections, in one process or spanning many.

- :class:`Topics`: the in-process hub (no dependency).
- :class:`Backplane`: what spans a hub across processes (the worker master's
  hub, Redis); see :mod:`ratchet_sel.pubsub.topics`.
- :class:`Publication` and the wire form in :mod:`ratchet_sel.pubsub.envelope`.
- :class:`RedisPubSub`: a hub spanning every process on one Redis server
  (:mod:`ratchet_sel.pubsub.redis`, RESP2 on the library's loop).
- :class:`PublishEndpoint`: ``POST /publish`` with a bearer token, push over HTTP.
- :func:`publish` and :class:`Publisher`: blocking, for other programs (a web view, a
  cron job), through Redis or ``POST /publish`` (:mod:`ratchet_sel.pubsub.publisher`).
- :func:`user_topic`: the topic of one user's connections, ``"user:<id>"``
  (:mod:`ratchet_sel.pubsub.users`).
"""

from .envelope import Publication
from .http_publish import PublishEndpoint
from .publisher import PublishError, Publisher, publish
from .redis import RedisBackplane, RedisPubSub
from .topics import Backplane, Topics, subscriber_key
from .users import user_topic

__all__ = ["Topics", "Backplane", "Publication", "subscriber_key", "RedisPubSub", "RedisBackplane",
           "PublishEndpoint", "publish", "Publisher", "PublishError", "user_topic"]
