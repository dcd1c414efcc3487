"""What applications of the WAMP v2 router use: errors, results, call details, error URIs."""

from typing import Any, Dict, Optional

__all__ = ["ApplicationError", "Result", "CallDetails", "EventDetails", "ERROR_NO_SUCH_PROCEDURE",
           "ERROR_PROCEDURE_ALREADY_EXISTS", "ERROR_INVALID_ARGUMENT", "ERROR_NO_SUCH_SUBSCRIPTION",
           "ERROR_NO_SUCH_REGISTRATION", "ERROR_NO_SUCH_REALM", "ERROR_NOT_AUTHORIZED", "ERROR_AUTHENTICATION_FAILED",
           "ERROR_PROTOCOL_VIOLATION", "ERROR_CANCELED", "ERROR_TIMEOUT", "ERROR_RUNTIME", "ERROR_INVALID_URI",
           "ERROR_TOO_MANY_CALLS", "ERROR_LIMIT_REACHED", "CLOSE_GOODBYE_AND_OUT", "CLOSE_NORMAL",
           "CLOSE_SYSTEM_SHUTDOWN"]

ERROR_NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
ERROR_PROCEDURE_ALREADY_EXISTS = "wamp.error.procedure_already_exists"
ERROR_INVALID_ARGUMENT = "wamp.error.invalid_argument"
ERROR_NO_SUCH_SUBSCRIPTION = "wamp.error.no_such_subscription"
ERROR_NO_SUCH_REGISTRATION = "wamp.error.no_such_registration"
ERROR_NO_SUCH_REALM = "wamp.error.no_such_realm"
ERROR_NOT_AUTHORIZED = "wamp.error.not_authorized"
ERROR_AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
ERROR_PROTOCOL_VIOLATION = "wamp.error.protocol_violation"
ERROR_CANCELED = "wamp.error.canceled"
ERROR_TIMEOUT = "wamp.error.timeout"
ERROR_INVALID_URI = "wamp.error.invalid_uri"
#: A server-side procedure raised something other than :class:`ApplicationError` (details are logged, not sent).
ERROR_RUNTIME = "wamp.error.runtime_error"
#: A caller has ``max_outstanding_calls`` calls in progress already.
ERROR_TOO_MANY_CALLS = "ratchet_sel.error.too_many_calls"
#: A session has reached its most subscriptions or registrations.
ERROR_LIMIT_REACHED = "ratchet_sel.error.limit_reached"
CLOSE_GOODBYE_AND_OUT = "wamp.close.goodbye_and_out"
CLOSE_NORMAL = "wamp.close.normal"
CLOSE_SYSTEM_SHUTDOWN = "wamp.close.system_shutdown"


class ApplicationError(Exception):
    """Raise it in a procedure to answer the caller with ERROR ``uri``, ``args`` and ``kwargs``::

        def divide(a, b):
            if b == 0:
                raise ApplicationError("com.example.divide_by_zero", "b is zero", a=a)
            return a / b
    """

    def __init__(self, uri: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(uri, *args)
        self.uri = uri
        self.args_list = list(args)
        self.kwargs = kwargs

    def __str__(self) -> str:
        return "%s%s" % (self.uri, ": %s" % self.args_list[0] if self.args_list else "")


class Result:
    """Return it from a procedure to answer with several positional and/or keyword results::

        def stats():
            return Result(1, 2, total=3)      # RESULT args [1, 2], kwargs {"total": 3}

    A plain return value ``v`` is ``Result(v)``; ``None`` is a RESULT without arguments.
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = list(args)
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return "Result(args=%r, kwargs=%r)" % (self.args, self.kwargs)


class CallDetails:
    """Given as ``details=`` to a procedure registered with ``details=True``.

    ``session``: the caller's :class:`~ratchet_sel.wamp.v2.router.RouterSession`
    (its ``session_id``, ``realm``, ``authid``, ``authrole``, ``connection``);
    ``procedure``: the URI called; ``options``: the CALL's options dict.
    """

    __slots__ = ("session", "procedure", "options")

    def __init__(self, session: Any, procedure: str, options: Dict[str, Any]) -> None:
        self.session = session
        self.procedure = procedure
        self.options = options


class EventDetails:
    """Given as ``details=`` to a server-side subscriber registered with ``details=True``.

    ``topic``: the URI; ``publisher``: the publishing session's id when it is
    known in this process (``None`` for publications from other processes and
    from v1 clients); ``realm``: the realm name.
    """

    __slots__ = ("topic", "publisher", "realm")

    def __init__(self, topic: str, publisher: Optional[int], realm: str) -> None:
        self.topic = topic
        self.publisher = publisher
        self.realm = realm


