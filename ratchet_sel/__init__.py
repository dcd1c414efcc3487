"""ratchet_sel: WebSocket and socket servers from small components, on one selectors loop.

A Python re-creation of PHP's Ratchet, standard library only::

    from ratchet_sel import IoServer, WsServer, MessageComponent

    class Echo(MessageComponent):
        def on_message(self, conn, msg):
            conn.send(msg)

    IoServer.factory(WsServer(Echo()), 8000).run()

Who is connecting: :class:`TokenAuth`, :class:`BasicAuth` (or your own
:class:`Guard`) answer 401/403 before the upgrade and put the user on
``conn.user``; :func:`user_topic` addresses all of one user's connections.

Beyond one process: :class:`Topics` (publish/subscribe), :class:`RedisPubSub`
(the same across hosts), :func:`run_workers` (prefork workers on one port),
:class:`WampServer` (Ratchet's WAMP v1), and the client in
:mod:`ratchet_sel.client` (``from ratchet_sel.client import connect``).
"""

from . import _moved  # noqa: F401  (old module paths keep importing)
from .component import ComponentDecorator, ComponentInterface, HttpServerInterface, MessageComponent
from .http import HttpServer, Request, Response
from .io import Connection, IoServer, Loop, exit_on_startup_error
from .websocket import CloseCode, WsConnection, WsServer, broadcast
from .app import App
from .server import BasicAuth, FlashPolicy, Guard, IpBlackList, OriginCheck, Refusal, TokenAuth, TrustedProxies
from .http import HealthCheck, Responder, Router, StaticFiles
from .session import SessionProvider
from .pubsub import PublishEndpoint, RedisPubSub, Topics, user_topic
from .ops.health import HealthEndpoint
from .ops.metrics import MetricsEndpoint
from .wamp import WampServer, WampServerInterface
from .workers import Workers, run_workers
from .ops import accelerator as _accelerator

__version__ = "0.1.0"

__all__ = [
    "ComponentInterface", "MessageComponent", "ComponentDecorator", "HttpServerInterface",
    "Loop", "IoServer", "Connection", "exit_on_startup_error", "HttpServer", "Request", "Response",
    "WsServer", "WsConnection", "CloseCode", "broadcast",
    "App", "Router", "StaticFiles", "Responder", "HealthCheck",
    "OriginCheck", "IpBlackList", "FlashPolicy", "TrustedProxies", "SessionProvider",
    "Guard", "Refusal", "TokenAuth", "BasicAuth", "user_topic",
    "Topics", "RedisPubSub", "PublishEndpoint", "MetricsEndpoint", "HealthEndpoint",
    "WampServer", "WampServerInterface", "Workers", "run_workers",
    "speedups_enabled",
]

#: True when WebSocket masking runs in the optional C accelerator, False on the pure-Python path
#: (see :mod:`ratchet_sel.accelerator`; ``RATCHET_SEL_NO_SPEEDUPS=1`` forces pure Python).
speedups_enabled = _accelerator.enabled
