"""Per-user addressing: every connection of one user, on any worker or host.

A connection whose user is known (``conn.user``, set by
:class:`~ratchet_sel.TokenAuth` or :class:`~ratchet_sel.BasicAuth`) joins the
user's topic when it opens; a publication to that topic reaches all of that
user's connections, wherever the hub spans (workers through the master, hosts
through Redis), and nobody else's::

    def on_open(self, conn):
        topics.subscribe(conn, user_topic(conn.user))

    topics.publish(user_topic("alice"), "you have mail")            # in the server
    publish("redis://127.0.0.1:6379/0", user_topic("alice"), "hi")  # from any program

The connection leaves the topic by itself when it closes.
"""

from typing import Any

__all__ = ["USER_TOPIC_PREFIX", "user_topic"]

#: What every user topic starts with: ``"user:" + <user id>``.
USER_TOPIC_PREFIX = "user:"


def user_topic(user: Any) -> str:
    """The topic of one user's connections: ``"user:<id>"``.

    ``user`` is the id (a ``str`` or an ``int``) or an object with an ``id``
    attribute (a user record).  An empty id, ``None`` or ``bool`` is a
    ``ValueError``/``TypeError``: a typo must not put every anonymous
    connection on one shared topic.
    """
    if not isinstance(user, (str, int)) or isinstance(user, bool):
        ident = getattr(user, "id", None)
        if not isinstance(ident, (str, int)) or isinstance(ident, bool):
            raise TypeError("user_topic needs a user id (str or int) or an object with one as .id, not %r"
                            % type(user).__name__)
        user = ident
    text = str(user)
    if not text:
        raise ValueError("user_topic: the user id is empty")
    return USER_TOPIC_PREFIX + text
