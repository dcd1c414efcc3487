"""WAMP v2 across processes (issue 23, item 4), with AutobahnPython clients.

    python workers_check.py workers URL REALM MASTER_PID json|msgpack
        `python -m ratchet_sel wamp --workers 2`: connections are opened until two
        sessions sit on different workers; then RPC between them both ways (args
        and kwargs, an application error, a callee that disconnects mid-call),
        and an event from one worker's publisher to the other's subscriber.
    python workers_check.py redis URL1 URL2 REALM json|msgpack
        two servers on one Redis: an event published on server 1 reaches a
        subscriber on server 2 and the other way round; a call to a procedure
        registered only on the other server either works or answers
        wamp.error.no_such_procedure (printed: the router documents which).

Which worker holds a connection is read from /proc, not from the router: the
client's local port identifies the server-side socket in /proc/net/tcp, whose
inode is an open fd of exactly one worker process (each worker accepts on its
own SO_REUSEPORT socket, so the master never holds client sockets).
PASS/FAIL lines; exit status 1 on any failure; every wait bounded.
"""

import asyncio
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.types import PublishOptions  # noqa: E402

from py_client import WAIT, Report, connect, error_parts, leave, outcome  # noqa: E402

MAX_CONNECTIONS = 24


def children(pid):
    """Pids whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def socket_inode(local_port, remote_port):
    """The inode of the TCP socket local_port -> remote_port (server side), or None."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if (int(fields[1].rsplit(":", 1)[1], 16) == local_port
                            and int(fields[2].rsplit(":", 1)[1], 16) == remote_port):
                        return fields[9]
        except OSError:
            pass
    return None


def owner(pids, inode):
    """Which of pids has socket:[inode] open."""
    target = "socket:[%s]" % inode
    for pid in pids:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                        return pid
                except OSError:
                    pass
        except OSError:
            pass
    return None


def worker_of(session, server_port, workers):
    """The worker pid serving session."""
    client_port = session._transport.transport.get_extra_info("sockname")[1]   # noqa: SLF001 (test script)
    inode = socket_inode(server_port, client_port)
    return owner(workers, inode) if inode else None


async def rpc_between(r, label, caller, callee, url, realm, ser, prefix):
    """Calls from caller to callee's procedures (they sit on different processes)."""
    def mul(*args, **kwargs):
        return [a * kwargs.get("by", 1) for a in args]

    def fail(*args, **kwargs):
        raise ApplicationError(prefix + ".error.custom", "far", 1, where="other worker")

    await asyncio.wait_for(callee.register(mul, prefix + ".mul"), WAIT)
    await asyncio.wait_for(callee.register(fail, prefix + ".fail"), WAIT)
    res = await outcome(caller.call(prefix + ".mul", 1, 2, 3, by=10))
    r.check("%s: call with args and kwargs" % label, res == ("ok", [10, 20, 30]), "got %r" % (res,))
    res = await outcome(caller.call(prefix + ".fail"))
    r.check("%s: application error (URI, args, kwargs)" % label,
            error_parts(res) == (prefix + ".error.custom", ["far", 1], {"where": "other worker"}),
            "got %r" % (error_parts(res) or res,))
    res = await outcome(caller.call(prefix + ".none"))
    r.check("%s: unknown procedure: wamp.error.no_such_procedure" % label,
            error_parts(res) is not None and error_parts(res)[0] == "wamp.error.no_such_procedure",
            "got %r" % (error_parts(res) or res,))


async def workers_mode(url, realm, master_pid, ser):
    r = Report("workers autobahn-python %s" % ser)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    workers = children(master_pid)
    r.check("the master has 2 workers", len(workers) == 2, "children %r" % workers)
    sessions = {}
    extra = []
    for _ in range(MAX_CONNECTIONS):
        s = await connect(url, realm, ser)
        pid = worker_of(s, port, workers)
        if pid in sessions or pid is None:
            extra.append(s)
        else:
            sessions[pid] = s
        if len(sessions) == 2:
            break
    if not r.check("two sessions on different workers", len(sessions) == 2,
                   "placement %r after %d connections" % (sorted(sessions), len(sessions) + len(extra))):
        return r
    (w1, a), (w2, b) = sorted(sessions.items())
    prefix = "com.ratchet_sel.proof.workers%d" % os.getpid()
    await rpc_between(r, "caller on worker %d -> callee on worker %d" % (w2, w1), b, a, url, realm, ser, prefix + ".a")
    await rpc_between(r, "caller on worker %d -> callee on worker %d" % (w1, w2), a, b, url, realm, ser, prefix + ".b")

    # A callee on another worker that disconnects mid-call.
    d = None
    for s in extra:
        if worker_of(s, port, workers) == w1:
            d = s
            break
    while d is None:
        s = await connect(url, realm, ser)
        if worker_of(s, port, workers) == w1:
            d = s
        else:
            extra.append(s)
    invoked = asyncio.get_running_loop().create_future()

    def vanish(*args, **kwargs):
        invoked.set_result(True)
        d.disconnect()
        return asyncio.get_running_loop().create_future()
    await asyncio.wait_for(d.register(vanish, prefix + ".vanish"), WAIT)
    call = asyncio.ensure_future(b.call(prefix + ".vanish"))
    await asyncio.wait([invoked, call], timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if not invoked.done() and call.done():
        res = await outcome(call)
        res = ("never invoked; the call ended with", error_parts(res) or res)
    else:
        res = await outcome(call)
    r.check("callee on worker %d disconnects mid-call: the caller on worker %d gets ERROR wamp.error.canceled" % (w1, w2),
            error_parts(res) is not None and error_parts(res)[0] == "wamp.error.canceled",
            "got %r" % (error_parts(res) or res,))

    topic = prefix + ".topic"
    await a.listen(topic)
    # The hub relays asynchronously: publish until the first event arrives (bounded).
    got = await relay_event(b, a, topic, "across workers")
    r.check("publisher on worker %d -> subscriber on worker %d" % (w2, w1), got == (["across workers"], {"n": 1}),
            "got %r" % (got,))
    for s in [a, b] + extra:
        try:
            await leave(s)
        except Exception:  # noqa: BLE001
            pass
    return r


async def relay_event(publisher, subscriber, topic, text):
    """Publishes (acknowledged) every 0.5 s until subscriber has an event (WAIT bound).

    A subscription on another process is known there only after the hub or Redis
    relays it, and WAMP gives no signal for that; repeated publications are how a
    client waits for it.  Returns the first event (args, kwargs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        await asyncio.wait_for(publisher.publish(topic, text, n=1, options=PublishOptions(acknowledge=True)), WAIT)
        try:
            return await asyncio.wait_for(subscriber.queue(topic).get(), 0.5)
        except asyncio.TimeoutError:
            if loop.time() > deadline:
                return ("nothing within %ss" % WAIT,)


async def redis_mode(url1, url2, realm, ser):
    r = Report("redis autobahn-python %s" % ser)
    a = await connect(url1, realm, ser)
    b = await connect(url2, realm, ser)
    prefix = "com.ratchet_sel.proof.redis%d" % os.getpid()
    await a.listen(prefix + ".t1")
    await b.listen(prefix + ".t2")
    got = await relay_event(b, a, prefix + ".t1", "server 2 to 1")
    r.check("publisher on server 2 -> subscriber on server 1 (Redis)", got == (["server 2 to 1"], {"n": 1}), "got %r" % (got,))
    got = await relay_event(a, b, prefix + ".t2", "server 1 to 2")
    r.check("publisher on server 1 -> subscriber on server 2 (Redis)", got == (["server 1 to 2"], {"n": 1}), "got %r" % (got,))
    await asyncio.wait_for(a.register(lambda x: x + 1, prefix + ".inc"), WAIT)
    res = await outcome(b.call(prefix + ".inc", 41))
    parts = error_parts(res)
    r.check("call to a procedure registered only on the other server: a result or no_such_procedure",
            res == ("ok", 42) or (parts is not None and parts[0] == "wamp.error.no_such_procedure"),
            "the router answered %r" % (parts or res,))
    for s in (a, b):
        await leave(s)
    return r


async def main(argv):
    if len(argv) == 5 and argv[0] == "workers":
        r = await workers_mode(argv[1], argv[2], int(argv[3]), argv[4])
    elif len(argv) == 5 and argv[0] == "redis":
        r = await redis_mode(argv[1], argv[2], argv[3], argv[4])
    else:
        sys.stderr.write(__doc__)
        return 2
    print("[%s] %d passed, %d failed" % (r.label, r.passes, r.failures), flush=True)
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
