"""Port 80 without staying root: switch to another user once the listening sockets are bound.

Binding a port below 1024 needs root (or ``CAP_NET_BIND_SERVICE``); serving
connections does not.  :func:`drop_privileges` is called right after the
listeners are bound (``--user NAME`` on the command line, ``user=`` of
:func:`~ratchet_sel.workers.run_workers`): it clears the supplementary groups
and sets those of the user, then the group, then the user (in this order: once
the user is not root, it could not change its groups any more), and checks that
root cannot be regained.  Any failure raises :class:`PrivilegeError`: the
program must not go on serving as root when it was asked not to.

With systemd socket activation (see :mod:`ratchet_sel.io.activation`) the
process needs no root at all: systemd binds the port and hands it over.
"""

import os
from typing import Any, Optional, Tuple

__all__ = ["PrivilegeError", "drop_privileges", "lookup_user", "lookup_group"]


class PrivilegeError(Exception):
    """Privileges cannot be dropped as asked; ``status`` is the exit status (2: a usage error)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _pwd() -> Any:
    try:
        import pwd
    except ImportError:  # Windows
        raise PrivilegeError("--user and --group need a POSIX system", 2) from None
    return pwd


def lookup_user(name: str) -> Tuple[str, int, int]:
    """``(name, uid, primary gid)`` of a user name or numeric uid; :class:`PrivilegeError` (status 2) if unknown."""
    pwd = _pwd()
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError, OverflowError):
        raise PrivilegeError("no such user: %r" % name, 2) from None
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def lookup_group(name: str) -> int:
    """The gid of a group name or numeric gid; :class:`PrivilegeError` (status 2) if unknown."""
    _pwd()
    import grp

    try:
        return grp.getgrgid(int(name)).gr_gid if name.isdigit() else grp.getgrnam(name).gr_gid
    except (KeyError, ValueError, OverflowError):
        raise PrivilegeError("no such group: %r" % name, 2) from None


def drop_privileges(user: Optional[str], group: Optional[str] = None) -> Optional[str]:
    """Become ``user`` (and ``group``, default the user's primary group) for good; returns what was done.

    ``None`` when there is nothing to do (no ``user``), or a description such
    as ``"user nobody (uid 65534), group 65534"``.  Only root may switch;
    a process that already runs as the very user and group asked for is left
    as it is.  Raises :class:`PrivilegeError` when the names are unknown
    (status 2), ``group`` comes without ``user`` (status 2), or the switch fails
    or could be undone (status 1).
    """
    if user is None:
        if group is not None:
            raise PrivilegeError("--group needs --user: changing the group alone would leave the process root", 2)
        return None
    name, uid, gid = lookup_user(user)
    if group is not None:
        gid = lookup_group(group)
    described = "user %s (uid %d), group %d" % (name, uid, gid)
    if os.geteuid() != 0:
        if os.getuid() == uid and os.geteuid() == uid and os.getgid() == gid and os.getegid() == gid:
            return "already " + described
        raise PrivilegeError("cannot switch to %s: this process runs as uid %d, not root" % (described, os.geteuid()))
    try:
        os.setgroups([])
        os.initgroups(name, gid)
        os.setgid(gid)       # as root: real, effective and saved gid
        os.setuid(uid)       # last: after it, nothing above would be allowed
    except OSError as exc:
        raise PrivilegeError("cannot switch to %s: %s" % (described, exc.strerror or exc)) from None
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (uid, uid, gid, gid):
        raise PrivilegeError("switched to %s, but the process has uid %d/%d and gid %d/%d"
                             % (described, os.getuid(), os.geteuid(), os.getgid(), os.getegid()))
    if uid != 0:
        try:
            os.setuid(0)
        except OSError:
            pass     # as it should be
        else:
            raise PrivilegeError("switched to %s, but root could be regained" % described)
    return described
