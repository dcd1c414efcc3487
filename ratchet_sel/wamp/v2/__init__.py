"""WAMP v2: a router (broker and dealer) with JSON and MessagePack, beside WAMP v1 on the same port.

::

    from ratchet_sel import IoServer, WsServer
    from ratchet_sel.wamp.v2 import ApplicationError, WampRouter

    router = WampRouter(["realm1"])

    def divide(a, b):
        if b == 0:
            raise ApplicationError("com.example.divide_by_zero", "b is zero")
        return a / b

    router.register("com.example.divide", divide)
    router.subscribe("com.example.news", lambda *args, **kwargs: print(args, kwargs))
    IoServer.factory(WsServer(router), 8080).run()

See docs/wamp.md ("WAMP v2").
"""

from .api import ApplicationError, CallDetails, EventDetails, Result
from .auth import Admission
from .dispatch import WampVersions
from .router import RouterSession, WampRouter
from .serializers import JsonSerializer, MsgpackSerializer, SerializationError
from .session import SessionProtocol

__all__ = ["WampRouter", "WampVersions", "RouterSession", "ApplicationError", "Result", "CallDetails",
           "EventDetails", "Admission", "SessionProtocol", "JsonSerializer", "MsgpackSerializer",
           "SerializationError"]
