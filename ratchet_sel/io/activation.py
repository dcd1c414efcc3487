"""systemd socket activation: serve the listening sockets systemd bound, instead of binding.

With a ``.socket`` unit, systemd binds the port (port 80 included) and starts
the service with the sockets as file descriptors 3, 4, ... and three
environment variables: ``LISTEN_PID`` (the pid they are meant for),
``LISTEN_FDS`` (how many) and, optionally, ``LISTEN_FDNAMES`` (their
``FileDescriptorName=``, colon-separated).  The service needs no root at all.

:func:`inherited_listeners` reads them (only when ``LISTEN_PID`` is this
process: a child that inherited the environment is not meant), removes them
from the environment so that children do not take them for theirs, and checks
that each descriptor is a listening TCP socket.  The protocol is systemd's
``sd_listen_fds(3)``; nothing of systemd is needed at run time.
"""

import os
import socket
from typing import List, MutableMapping, NamedTuple, Optional

__all__ = ["InheritedListener", "ActivationError", "inherited_listeners", "LISTEN_FDS_START"]

#: The first inherited descriptor (``SD_LISTEN_FDS_START``).
LISTEN_FDS_START = 3

_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(Exception):
    """The environment names this process but its descriptors cannot be served; the message says why."""


class InheritedListener(NamedTuple):
    """One socket from systemd, and its ``FileDescriptorName=`` (``None`` without names)."""

    socket: socket.socket
    name: Optional[str]


def _name(constant: int) -> str:
    # The socket module turns known values into enums; an unknown one stays a plain int.
    return str(getattr(constant, "name", constant))


def _check_listener(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ActivationError("LISTEN_FDS: descriptor %d is not a socket (%s)" % (fd, exc.strerror or exc)) from None
    problem = None
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        problem = "not a TCP socket (family %s): use ListenStream=PORT or ADDRESS:PORT" % _name(sock.family)
    elif sock.type != socket.SOCK_STREAM:
        problem = "not a stream socket (%s): use ListenStream=, not ListenDatagram=" % _name(sock.type)
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = "not listening (Accept=no and a ListenStream= socket are needed)"
    if problem is not None:
        sock.detach()   # not ours to close
        raise ActivationError("LISTEN_FDS: descriptor %d is %s" % (fd, problem))
    return sock


def inherited_listeners(environ: Optional[MutableMapping[str, str]] = None,
                        pid: Optional[int] = None) -> List[InheritedListener]:
    """The listening sockets systemd passed to this process; empty when none were.

    ``environ`` defaults to :data:`os.environ` and ``pid`` to this process's.
    When ``LISTEN_PID`` names ``pid``, the three variables are removed from
    ``environ`` (and from the real environment) and each descriptor is marked
    close-on-exec.  Raises :class:`ActivationError` for a malformed
    ``LISTEN_FDS`` or a descriptor that is not a listening TCP stream socket.
    """
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if env.get("LISTEN_PID", "").strip() != str(os.getpid() if pid is None else pid):
        return []
    count_text = env.get("LISTEN_FDS", "").strip()
    names_text = env.get("LISTEN_FDNAMES")
    for variable in _VARIABLES:
        env.pop(variable, None)   # os.environ also unsets it for this process's children
    if not count_text.isdigit():
        raise ActivationError("LISTEN_FDS is %r, not a number of descriptors" % count_text)
    count = int(count_text)
    names: List[Optional[str]] = list(names_text.split(":")) if names_text else []
    names += [None] * (count - len(names))
    listeners = []
    for index in range(count):
        fd = LISTEN_FDS_START + index
        sock = _check_listener(fd)
        sock.set_inheritable(False)   # close-on-exec: a program this one starts must not hold the port
        listeners.append(InheritedListener(sock, names[index]))
    return listeners

