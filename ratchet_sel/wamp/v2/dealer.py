"""The dealer of one realm: registrations, and calls routed from callers to callees.

A procedure is registered either by a client session (REGISTER) or by the
server application (:meth:`Dealer.add_procedure`, a plain synchronous
function).  A CALL of a client's procedure becomes an INVOCATION to the
callee and waits for its YIELD or ERROR; the dealer keeps it as a
:class:`PendingCall` until then, and answers the caller with an ERROR when
the callee leaves (``wamp.error.canceled``), when the call's ``timeout``
option (milliseconds) runs out (``wamp.error.timeout``), or when the caller
cancels it (CANCEL, modes ``skip``, ``kill`` and ``killnowait``).
"""

import logging
from typing import Any, Callable, Dict, Optional

from . import messages as m
from .api import (ERROR_CANCELED, ERROR_INVALID_ARGUMENT, ERROR_NO_SUCH_PROCEDURE, ERROR_RUNTIME, ERROR_TIMEOUT,
                  ERROR_TOO_MANY_CALLS, ApplicationError, CallDetails, Result)
from .broker import new_id

__all__ = ["Dealer", "Registration", "PendingCall", "DEFAULT_MAX_OUTSTANDING_CALLS", "run_procedure"]

log = logging.getLogger(__name__)

#: Default most calls one session may have waiting for a callee at once.
DEFAULT_MAX_OUTSTANDING_CALLS = 1000


class Registration:
    """A procedure: its id and URI, and either the callee session or the server-side function."""

    __slots__ = ("id", "uri", "callee", "handler", "details", "disclose_caller")

    def __init__(self, uri: str, callee: Any = None, handler: Optional[Callable[..., Any]] = None,
                 details: bool = False, disclose_caller: bool = False) -> None:
        self.id = new_id()
        self.uri = uri
        self.callee = callee
        self.handler = handler
        self.details = details
        #: REGISTER option ``disclose_caller``: every INVOCATION names its caller.
        self.disclose_caller = disclose_caller

    def __repr__(self) -> str:
        return "<Registration %d %r %s>" % (self.id, self.uri, "server" if self.handler else self.callee)


class PendingCall:
    """A call waiting for its callee: who called (and with which request id), who runs it, its timer."""

    __slots__ = ("invocation_id", "caller", "request_id", "callee", "timer")

    def __init__(self, invocation_id: int, caller: Any, request_id: int, callee: Any) -> None:
        self.invocation_id = invocation_id
        self.caller = caller
        self.request_id = request_id
        self.callee = callee
        self.timer: Any = None


def run_procedure(handler: Callable[..., Any], args: list, kwargs: Optional[dict],
                  details: Optional[CallDetails]) -> list:
    """Run a server-side procedure; returns the router's answer as ``[error_uri_or_None, args, kwargs]``.

    A return value ``v`` answers ``[v]`` (``None``: no arguments), a
    :class:`Result` its own arguments; :class:`ApplicationError` answers its
    URI and arguments; a ``TypeError`` raised by the call itself (wrong
    arguments for the function's signature) answers ``wamp.error.invalid_argument``;
    anything else is logged and answers ``wamp.error.runtime_error``.
    """
    try:
        if details is not None:
            value = handler(*args, details=details, **(kwargs or {}))
        else:
            value = handler(*args, **(kwargs or {}))
    except ApplicationError as exc:
        return [exc.uri, exc.args_list, exc.kwargs]
    except TypeError as exc:
        tb = exc.__traceback__
        if tb is not None and tb.tb_next is None:   # raised by the call, not inside the function
            return [ERROR_INVALID_ARGUMENT, [str(exc)], {}]
        log.exception("procedure %r raised", handler)
        return [ERROR_RUNTIME, ["the procedure failed"], {}]
    except Exception:
        log.exception("procedure %r raised", handler)
        return [ERROR_RUNTIME, ["the procedure failed"], {}]
    if isinstance(value, Result):
        return [None, value.args, value.kwargs]
    return [None, [] if value is None else [value], {}]


class Dealer:
    """Registrations and calls of one realm (see the module documentation)."""

    def __init__(self, realm: str, max_outstanding_calls: int = DEFAULT_MAX_OUTSTANDING_CALLS) -> None:
        self.realm = realm
        self.max_outstanding_calls = max_outstanding_calls
        self.by_uri: Dict[str, Registration] = {}
        self.by_id: Dict[int, Registration] = {}
        self.pending: Dict[int, PendingCall] = {}
        self._next_invocation = 0
        #: The :class:`~ratchet_sel.wamp.v2.cluster.WorkerLink` to the other workers, if any.
        self.remote: Any = None

    # -- registrations -------------------------------------------------------------------
    def register(self, callee: Any, uri: str, disclose_caller: bool = False) -> Optional[Registration]:
        """Register ``uri`` for ``callee``; ``None`` if the procedure exists already."""
        if uri in self.by_uri:
            return None
        registration = Registration(uri, callee=callee, disclose_caller=disclose_caller)
        self.by_uri[uri] = self.by_id[registration.id] = registration
        callee.registrations[registration.id] = registration
        return registration

    def add_procedure(self, uri: str, handler: Callable[..., Any], details: bool = False) -> Registration:
        """Register a server-side function; ``ValueError`` if ``uri`` is registered already."""
        if uri in self.by_uri:
            raise ValueError("procedure %r is registered already in realm %r" % (uri, self.realm))
        registration = Registration(uri, handler=handler, details=details)
        self.by_uri[uri] = self.by_id[registration.id] = registration
        return registration

    def remove_procedure(self, uri: str) -> bool:
        """Remove a server-side function; False if ``uri`` is not one."""
        registration = self.by_uri.get(uri)
        if registration is None or registration.handler is None:
            return False
        del self.by_uri[uri], self.by_id[registration.id]
        return True

    def unregister(self, callee: Any, registration_id: int, release: bool = True) -> bool:
        """Remove one of ``callee``'s registrations; False if it has no such registration.

        Calls in progress on it still get their answer.  With other workers,
        the procedure's claim is given up unless ``release`` is false.
        """
        registration = callee.registrations.pop(registration_id, None)
        if registration is None:
            return False
        del self.by_uri[registration.uri], self.by_id[registration.id]
        if release and self.remote is not None:
            self.remote.release(self.realm, registration.uri)
        return True

    # -- calls ---------------------------------------------------------------------------------
    def call(self, caller: Any, request_id: int, options: dict, uri: str, args: list,
             kwargs: Optional[dict], local_only: bool = False) -> None:
        """Route CALL ``request_id`` of ``caller``: run it here, INVOCATION to its callee, or
        (unless ``local_only``) forward it to the worker that registered it."""
        registration = self.by_uri.get(uri)
        if registration is None:
            if self.remote is None or local_only:
                caller.send_error(m.CALL, request_id, ERROR_NO_SUCH_PROCEDURE, ["no procedure %s" % uri])
            elif len(caller.calls) >= self.max_outstanding_calls:
                caller.send_error(m.CALL, request_id, ERROR_TOO_MANY_CALLS,
                                  ["more than %d calls in progress" % self.max_outstanding_calls])
            else:
                self.remote.forward(caller, request_id, options, uri, args, kwargs)
            return
        if registration.handler is not None:
            details = CallDetails(caller, uri, options) if registration.details else None
            error, out_args, out_kwargs = run_procedure(registration.handler, args, kwargs, details)
            if error is not None:
                sent = caller.send_error(m.CALL, request_id, error, out_args, out_kwargs)
            else:
                sent = caller.send_result(request_id, out_args, out_kwargs)
            if not sent:    # the payload cannot be serialised for this caller: still an answer
                caller.send_error(m.CALL, request_id, ERROR_RUNTIME, ["the answer cannot be serialised"])
            return
        if len(caller.calls) >= self.max_outstanding_calls:
            caller.send_error(m.CALL, request_id, ERROR_TOO_MANY_CALLS,
                              ["more than %d calls in progress" % self.max_outstanding_calls])
            return
        self._invoke(caller, request_id, options, registration, args, kwargs)

    def _invoke(self, caller: Any, request_id: int, options: dict, registration: Registration, args: list,
                kwargs: Optional[dict]) -> None:
        self._next_invocation = invocation_id = self._next_invocation % m.MAX_ID + 1
        callee = registration.callee
        pending = PendingCall(invocation_id, caller, request_id, callee)
        details = {}
        if registration.disclose_caller or options.get("disclose_me") is True:
            # Caller identification: the caller's own identity, or the one a forwarding worker sent.
            details = caller.identity(options)
        message: list = [m.INVOCATION, invocation_id, registration.id, details]
        if args or kwargs:
            message.append(args)
            if kwargs:
                message.append(kwargs)
        if not callee.send(message):
            caller.send_error(m.CALL, request_id, ERROR_INVALID_ARGUMENT,
                              ["the arguments cannot be sent to the callee's serializer"])
            return
        self.pending[invocation_id] = pending
        caller.calls[request_id] = pending
        callee.invocations[invocation_id] = pending
        timeout = options.get("timeout")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            pending.timer = caller.loop.call_later(timeout / 1000.0, self._timed_out, pending)

    def _finish(self, pending: PendingCall) -> None:
        self.pending.pop(pending.invocation_id, None)
        pending.caller.calls.pop(pending.request_id, None)
        pending.callee.invocations.pop(pending.invocation_id, None)
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    def _interrupt(self, pending: PendingCall, mode: str) -> None:
        if pending.callee.supports("callee", "call_canceling"):
            pending.callee.send([m.INTERRUPT, pending.invocation_id, {"mode": mode}])

    def _timed_out(self, pending: PendingCall) -> None:
        if self.pending.get(pending.invocation_id) is not pending:
            return
        pending.timer = None
        self._finish(pending)
        self._interrupt(pending, "killnowait")
        pending.caller.send_error(m.CALL, pending.request_id, ERROR_TIMEOUT, ["the call timed out"])

    def yielded(self, callee: Any, invocation_id: int, args: Optional[list], kwargs: Optional[dict]) -> None:
        """YIELD from ``callee``: RESULT to the caller (a late or unknown YIELD is dropped)."""
        pending = callee.invocations.get(invocation_id)
        if pending is None:
            return
        self._finish(pending)
        if not pending.caller.send_result(pending.request_id, args, kwargs):
            pending.caller.send_error(m.CALL, pending.request_id, ERROR_INVALID_ARGUMENT,
                                      ["the result cannot be sent to the caller's serializer"])

    def failed(self, callee: Any, invocation_id: int, details: dict, error: str, args: Optional[list],
               kwargs: Optional[dict]) -> None:
        """ERROR from ``callee`` for an INVOCATION: the same ERROR to the caller."""
        pending = callee.invocations.get(invocation_id)
        if pending is None:
            return
        self._finish(pending)
        if not pending.caller.send_error(m.CALL, pending.request_id, error, args, kwargs, details):
            pending.caller.send_error(m.CALL, pending.request_id, error)

    def cancel(self, caller: Any, request_id: int, options: dict) -> None:
        """CANCEL from ``caller`` (modes ``skip``, ``kill`` (default) and ``killnowait``)."""
        pending = caller.calls.get(request_id)
        if pending is None:
            return      # answered already: nothing to cancel
        mode = options.get("mode", "kill")
        if not isinstance(pending, PendingCall):      # forwarded to another worker
            self.remote.cancel(pending, mode)
            if mode != "kill":
                caller.calls.pop(request_id, None)
                caller.send_error(m.CALL, request_id, ERROR_CANCELED, ["the call was canceled"])
            return
        if mode == "kill" and pending.callee.supports("callee", "call_canceling"):
            self._interrupt(pending, "kill")     # the callee's ERROR answers the caller
            return
        self._finish(pending)
        if mode != "skip":
            self._interrupt(pending, "killnowait")
        caller.send_error(m.CALL, request_id, ERROR_CANCELED, ["the call was canceled"])

    def session_left(self, session: Any) -> None:
        """``session`` is gone: its registrations go, its callers get ERROR, its calls are dropped."""
        for registration_id in list(session.registrations):
            self.unregister(session, registration_id)
        for pending in list(session.invocations.values()):
            self._finish(pending)
            pending.caller.send_error(m.CALL, pending.request_id, ERROR_CANCELED,
                                      ["the callee left before answering"])
        for pending in list(session.calls.values()):
            if not isinstance(pending, PendingCall):  # forwarded to another worker
                self.remote.caller_left(pending)
                continue
            self._finish(pending)
            self._interrupt(pending, "killnowait")
