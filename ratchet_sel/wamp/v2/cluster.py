"""Calls between the workers of one host: the dealer's link to the master's mailbox.

With ``--workers N`` every worker runs its own router; a client's REGISTER
claims the procedure's key (``REALM`` NUL ``URI``) at the master, so a
procedure has one callee across the workers, and REGISTERED (or
``wamp.error.procedure_already_exists``) waits for the master's answer.  A
CALL of a procedure that is not registered in the caller's worker goes to
the key's owner (:meth:`WorkerLink.forward`); the owner's dealer runs it as
for a local caller, with a :class:`RemoteCaller` standing for the calling
worker, and its RESULT or ERROR comes back the same way.  A key nobody owns
answers ``wamp.error.no_such_procedure``; a callee worker that dies answers
its forwarded calls with ``wamp.error.canceled``.

The mailbox messages are WAMP-JSON objects (bytes as NUL + base64) with an
``op``: ``call``, ``result``, ``error`` or ``cancel``.  Server-side
procedures (``router.register``) exist in every worker and never travel.
"""

import logging
from typing import Any, Dict, List, Optional

from . import messages as m
from .api import ERROR_CANCELED, ERROR_NO_SUCH_PROCEDURE, ERROR_PROCEDURE_ALREADY_EXISTS, ERROR_RUNTIME
from .serializers import JsonSerializer, SerializationError

__all__ = ["WorkerLink", "RemoteCaller", "ForwardedCall", "procedure_key"]

log = logging.getLogger(__name__)

_JSON = JsonSerializer()


def procedure_key(realm: str, uri: str) -> str:
    """The mailbox key of procedure ``uri`` in ``realm``."""
    return realm + "\x00" + uri


class ForwardedCall:
    """A call of this worker's caller, sent to the worker that owns the procedure."""

    __slots__ = ("forward_id", "caller", "request_id", "key")

    def __init__(self, forward_id: int, caller: Any, request_id: int, key: str) -> None:
        self.forward_id = forward_id
        self.caller = caller
        self.request_id = request_id
        self.key = key


class RemoteCaller:
    """Stands for another worker's callers in this worker's dealer (as ``PendingCall.caller``)."""

    def __init__(self, link: "WorkerLink", index: int) -> None:
        self.link = link
        self.index = index
        self.session_id = 0
        self.calls: Dict[int, Any] = {}
        self.invocations: Dict[int, Any] = {}
        self.registrations: Dict[int, Any] = {}

    def __repr__(self) -> str:
        return "<callers of worker %d>" % self.index

    @property
    def loop(self) -> Any:
        """The worker's loop (for call timeouts)."""
        return self.link.loop

    def identity(self, options: dict) -> Dict[str, Any]:
        """The identity of the calling session, as its worker sent it with the call."""
        identity = options.get("caller_identity")
        return identity if isinstance(identity, dict) else {}

    def supports(self, role: str, feature: str) -> bool:
        """A remote caller is never a callee: no feature to offer."""
        return False

    def send(self, message: list) -> bool:
        """Not a session: nothing is sent to it directly."""
        return False

    def send_result(self, request_id: int, args: Optional[list], kwargs: Optional[dict]) -> bool:
        """Send the RESULT of forwarded call ``request_id`` back to its worker."""
        return self.link.reply(self.index, {"op": "result", "id": request_id, "args": args or [],
                                            "kwargs": kwargs or {}})

    def send_error(self, request_type: int, request_id: int, error: str, args: Optional[list] = None,
                   kwargs: Optional[dict] = None, details: Optional[dict] = None) -> bool:
        """Send the ERROR of forwarded call ``request_id`` back to its worker."""
        return self.link.reply(self.index, {"op": "error", "id": request_id, "error": error, "args": args or [],
                                            "kwargs": kwargs or {}})


class WorkerLink:
    """The mailbox handler of one worker's router (see the module documentation)."""

    def __init__(self, router: Any, mailbox: Any, loop: Any) -> None:
        self.router = router
        self.mailbox = mailbox
        self.loop = loop
        self.forwarded: Dict[int, ForwardedCall] = {}
        # (worker index, realm) -> the stand-in for that worker's callers in that realm's dealer
        self.remote_callers: Dict[Any, RemoteCaller] = {}
        self._next_forward = 0
        mailbox.handler = self

    # -- registrations -----------------------------------------------------------------
    def claim(self, session: Any, request_id: int, registration: Any) -> None:
        """Claim ``registration``'s procedure for this worker; REGISTERED or ERROR follows the answer."""
        token = _JSON.encode([session.realm_name, session.session_id, request_id, registration.id]).encode("utf-8")
        if not self.mailbox.claim(procedure_key(session.realm_name, registration.uri), token):
            session.realm.dealer.unregister(session, registration.id)
            session.send_error(m.REGISTER, request_id, ERROR_RUNTIME, ["the worker cannot reach its master"])

    def release(self, realm: str, uri: str) -> None:
        """The procedure is no longer registered here."""
        self.mailbox.release(procedure_key(realm, uri))

    def claim_answered(self, key: str, granted: bool, token: bytes) -> None:
        """The master's answer to :meth:`claim`."""
        try:
            realm_name, session_id, request_id, registration_id = _JSON.decode(token)
        except (SerializationError, ValueError):
            log.error("a malformed claim token came back for %r", key)
            return
        realm = self.router.realms.get(realm_name)
        session = realm.sessions.get(session_id) if realm is not None else None
        if session is None or registration_id not in session.registrations:
            # The callee left (or unregistered) meanwhile, and its unregistering already sent a
            # RELEASE.  Release again only if no newer registration here waits for this key.
            uri = key.partition("\x00")[2]
            if granted and (realm is None or uri not in realm.dealer.by_uri):
                self.mailbox.release(key)
            return
        if granted:
            session.send([m.REGISTERED, request_id, registration_id])
            return
        realm.dealer.unregister(session, registration_id, release=False)
        session.send_error(m.REGISTER, request_id, ERROR_PROCEDURE_ALREADY_EXISTS,
                           ["procedure %s is registered in another worker" % key.partition("\x00")[2]])

    # -- calls from this worker ------------------------------------------------------------
    def forward(self, caller: Any, request_id: int, options: dict, uri: str, args: list,
                kwargs: Optional[dict]) -> None:
        """Send a call of a procedure not registered here to the worker that owns it."""
        self._next_forward = forward_id = self._next_forward % m.MAX_ID + 1
        key = procedure_key(caller.realm_name, uri)
        message: Dict[str, Any] = {"op": "call", "id": forward_id, "realm": caller.realm_name, "uri": uri,
                                   "args": args or [], "kwargs": kwargs or {}}
        forwarded_options: Dict[str, Any] = {"caller_identity": caller.identity()}
        timeout = options.get("timeout")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            forwarded_options["timeout"] = timeout
        if options.get("disclose_me") is True:
            forwarded_options["disclose_me"] = True
        message["options"] = forwarded_options
        try:
            payload = _JSON.encode(message).encode("utf-8")
        except SerializationError as exc:
            caller.send_error(m.CALL, request_id, ERROR_RUNTIME, [str(exc)])
            return
        if not self.mailbox.to_owner(key, payload):
            caller.send_error(m.CALL, request_id, ERROR_RUNTIME, ["the call could not be passed to another worker"])
            return
        forwarded = ForwardedCall(forward_id, caller, request_id, key)
        self.forwarded[forward_id] = forwarded
        caller.calls[request_id] = forwarded

    def cancel(self, forwarded: ForwardedCall, mode: str) -> None:
        """The caller canceled a forwarded call: ask the owner to cancel it too.

        With mode ``kill`` the owner's answer still comes back to the caller;
        with the others the caller is answered now and a late answer is dropped.
        """
        if mode != "kill":
            self.forwarded.pop(forwarded.forward_id, None)
        realm = forwarded.key.partition("\x00")[0]
        payload = _JSON.encode({"op": "cancel", "id": forwarded.forward_id, "realm": realm,
                                "mode": mode}).encode("utf-8")
        self.mailbox.to_owner(forwarded.key, payload)

    def caller_left(self, forwarded: ForwardedCall) -> None:
        """The caller of a forwarded call left: its answer will be dropped."""
        self.forwarded.pop(forwarded.forward_id, None)
        self.cancel(forwarded, "killnowait")

    def _answer(self, message: dict) -> None:
        forwarded = self.forwarded.pop(message.get("id"), None)  # type: ignore[arg-type]
        if forwarded is None:
            return
        caller = forwarded.caller
        caller.calls.pop(forwarded.request_id, None)
        if message["op"] == "result":
            caller.send_result(forwarded.request_id, message.get("args"), message.get("kwargs"))
        else:
            caller.send_error(m.CALL, forwarded.request_id, str(message.get("error")), message.get("args"),
                              message.get("kwargs"))

    def reply(self, index: int, message: dict) -> bool:
        """Send a forwarded call's answer back to worker ``index``."""
        try:
            payload = _JSON.encode(message).encode("utf-8")
        except SerializationError as exc:
            payload = _JSON.encode({"op": "error", "id": message.get("id"), "error": ERROR_RUNTIME,
                                    "args": [str(exc)]}).encode("utf-8")
        return self.mailbox.to_worker(index, payload)

    # -- what the master delivers ------------------------------------------------------------
    def delivered(self, sender: int, payload: bytes) -> None:
        """A call, cancel, result or error from worker ``sender``."""
        try:
            message = _JSON.decode(payload)
            op = message["op"]
        except (SerializationError, ValueError, TypeError, KeyError):
            log.error("a malformed mailbox message from worker %d was dropped", sender)
            return
        if op in ("result", "error"):
            self._answer(message)
            return
        realm = self.router.realms.get(message.get("realm"))
        if realm is None:
            if op == "call":
                self.reply(sender, {"op": "error", "id": message.get("id"), "error": ERROR_NO_SUCH_PROCEDURE,
                                    "args": ["no such realm here"]})
            return
        caller = self.remote_callers.get((sender, realm.name))
        if caller is None:
            caller = self.remote_callers[(sender, realm.name)] = RemoteCaller(self, sender)
        if op == "call":
            realm.dealer.call(caller, message["id"], message.get("options") or {}, message["uri"],
                              message.get("args") or [], message.get("kwargs") or None, local_only=True)
        elif op == "cancel":
            realm.dealer.cancel(caller, message["id"], {"mode": message.get("mode", "kill")})

    def unrouted(self, key: str, payload: bytes) -> None:
        """Nobody owns ``key``: a forwarded call is answered ``wamp.error.no_such_procedure``."""
        try:
            message = _JSON.decode(payload)
        except SerializationError:
            return
        if isinstance(message, dict) and message.get("op") == "call":
            self._answer({"op": "error", "id": message.get("id"), "error": ERROR_NO_SUCH_PROCEDURE,
                          "args": ["no procedure %s" % key.partition("\x00")[2]]})

    def worker_gone(self, index: int, keys: List[str]) -> None:
        """Worker ``index`` ended: calls forwarded to it fail, calls from it are dropped."""
        gone = set(keys)
        for forwarded in [f for f in self.forwarded.values() if f.key in gone]:
            self._answer({"op": "error", "id": forwarded.forward_id, "error": ERROR_CANCELED,
                          "args": ["the callee's worker ended"]})
        for sender, realm_name in [key for key in self.remote_callers if key[0] == index]:
            caller = self.remote_callers.pop((sender, realm_name))
            realm = self.router.realms.get(realm_name)
            if realm is not None:
                realm.dealer.session_left(caller)
