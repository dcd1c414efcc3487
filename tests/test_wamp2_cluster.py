"""The WAMP v2 router's link to the other workers, without processes: a recording mailbox stands in."""

from ratchet_sel.wamp.v2 import WampRouter
from ratchet_sel.wamp.v2.serializers import SERIALIZERS

JSON = SERIALIZERS["wamp.2.json"]


class Connection:
    """What the router needs of a WebSocket connection; keeps what it was sent."""

    is_open = True
    loop = None
    subprotocol = "wamp.2.json"

    def __init__(self):
        self.sent = []

    def send(self, payload):
        self.sent.append(JSON.decode(payload))

    def close(self, code=1000, reason=""):
        self.is_open = False


class Mailbox:
    """Records what the link asks of the master."""

    def __init__(self):
        self.handler = None
        self.frames = []

    def claim(self, key, token=b""):
        self.frames.append(("claim", key, token))
        return True

    def release(self, key):
        self.frames.append(("release", key))
        return True

    def to_owner(self, key, payload):
        self.frames.append(("to_owner", key, JSON.decode(payload)))
        return True

    def to_worker(self, index, payload):
        self.frames.append(("to_worker", index, JSON.decode(payload)))
        return True


class Worker:
    def __init__(self):
        self.mailbox = Mailbox()
        self.loop = None


def joined(router):
    conn = Connection()
    router.on_open(conn)
    router.on_message(conn, JSON.encode([1, "realm1", {"roles": {"callee": {}, "caller": {}}}]))
    return conn


def test_register_waits_for_the_claim_and_a_stale_grant_keeps_a_newer_registration():
    router, worker = WampRouter(["realm1"]), Worker()
    router.span_workers(worker)
    callee = joined(router)
    router.on_message(callee, JSON.encode([64, 1, {}, "com.p"]))
    assert callee.sent[-1][0] == 2                       # still the WELCOME: REGISTERED waits
    first_token = worker.mailbox.frames[-1][2]
    router.on_message(callee, JSON.encode([66, 2, registration_id(first_token)]))
    assert callee.sent[-1] == [67, 2]
    router.on_message(callee, JSON.encode([64, 3, {}, "com.p"]))
    second_token = worker.mailbox.frames[-1][2]
    assert [frame[0] for frame in worker.mailbox.frames] == ["claim", "release", "claim"]
    worker.mailbox.handler.claim_answered("realm1\x00com.p", True, first_token)     # stale: no release
    assert [frame[0] for frame in worker.mailbox.frames] == ["claim", "release", "claim"]
    worker.mailbox.handler.claim_answered("realm1\x00com.p", True, second_token)
    assert callee.sent[-1] == [65, 3, registration_id(second_token)]


def test_a_refused_claim_answers_procedure_already_exists():
    router, worker = WampRouter(["realm1"]), Worker()
    router.span_workers(worker)
    callee = joined(router)
    router.on_message(callee, JSON.encode([64, 1, {}, "com.p"]))
    worker.mailbox.handler.claim_answered("realm1\x00com.p", False, worker.mailbox.frames[-1][2])
    assert callee.sent[-1][:5] == [8, 64, 1, {}, "wamp.error.procedure_already_exists"]
    assert worker.mailbox.frames[-1][0] == "claim"      # nothing to release: it was never ours


def test_forwarded_calls_and_their_answers():
    router, worker = WampRouter(["realm1"]), Worker()
    router.span_workers(worker)
    caller = joined(router)
    link = worker.mailbox.handler
    router.on_message(caller, JSON.encode([48, 7, {"timeout": 500}, "com.far", [1], {"k": b"\x01"}]))
    kind, key, message = worker.mailbox.frames[-1]
    assert (kind, key) == ("to_owner", "realm1\x00com.far")
    assert message["args"] == [1] and message["kwargs"] == {"k": b"\x01"}
    assert message["options"]["timeout"] == 500
    link.delivered(2, JSON.encode({"op": "result", "id": message["id"], "args": ["ok"], "kwargs": {}}).encode())
    assert caller.sent[-1] == [50, 7, {}, ["ok"]]
    # nobody owns the key: no_such_procedure; the owner's worker dies: canceled
    router.on_message(caller, JSON.encode([48, 8, {}, "com.nobody"]))
    link.unrouted("realm1\x00com.nobody", JSON.encode(worker.mailbox.frames[-1][2]).encode())
    assert caller.sent[-1][:5] == [8, 48, 8, {}, "wamp.error.no_such_procedure"]
    router.on_message(caller, JSON.encode([48, 9, {}, "com.far"]))
    link.worker_gone(2, ["realm1\x00com.far"])
    assert caller.sent[-1][:5] == [8, 48, 9, {}, "wamp.error.canceled"]
    # CANCEL skip answers at once and tells the owner; a late answer is dropped
    router.on_message(caller, JSON.encode([48, 10, {}, "com.far"]))
    forward_id = worker.mailbox.frames[-1][2]["id"]
    router.on_message(caller, JSON.encode([49, 10, {"mode": "skip"}]))
    assert caller.sent[-1][:5] == [8, 48, 10, {}, "wamp.error.canceled"]
    assert worker.mailbox.frames[-1][2] == {"op": "cancel", "id": forward_id, "realm": "realm1", "mode": "skip"}
    link.delivered(2, JSON.encode({"op": "result", "id": forward_id, "args": ["late"]}).encode())
    assert caller.sent[-1][:5] == [8, 48, 10, {}, "wamp.error.canceled"]


def test_calls_from_another_worker_reach_a_local_callee():
    router, worker = WampRouter(["realm1"]), Worker()
    router.span_workers(worker)
    callee = joined(router)
    router.on_message(callee, JSON.encode([64, 1, {"disclose_caller": True}, "com.here"]))
    link = worker.mailbox.handler
    link.claim_answered("realm1\x00com.here", True, worker.mailbox.frames[-1][2])
    link.delivered(3, JSON.encode({"op": "call", "id": 41, "realm": "realm1", "uri": "com.here", "args": [2],
                                   "kwargs": {}, "options": {"caller_identity": {"caller": 99}}}).encode())
    invocation = callee.sent[-1]
    assert invocation[0] == 68 and invocation[3] == {"caller": 99} and invocation[4] == [2]
    router.on_message(callee, JSON.encode([70, invocation[1], {}, [4]]))
    assert worker.mailbox.frames[-1] == ("to_worker", 3, {"op": "result", "id": 41, "args": [4], "kwargs": {}})
    link.delivered(3, JSON.encode({"op": "call", "id": 42, "realm": "nowhere", "uri": "com.here"}).encode())
    assert worker.mailbox.frames[-1][2]["error"] == "wamp.error.no_such_procedure"
    link.delivered(3, b"not json")                        # logged and dropped
    link.delivered(3, JSON.encode({"op": "call", "id": 43, "realm": "realm1", "uri": "com.here"}).encode())
    pending = callee.sent[-1]
    # The caller's worker dies: its call is dropped (this callee announced no call_canceling, so no
    # INTERRUPT), and the callee's late YIELD goes nowhere.
    link.worker_gone(3, [])
    router.on_message(callee, JSON.encode([70, pending[1], {}, [0]]))
    assert worker.mailbox.frames[-1][2]["id"] == 42


def registration_id(token):
    return JSON.decode(token)[3]
