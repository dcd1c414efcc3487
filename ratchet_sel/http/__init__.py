"""The HTTP layer: a sans-IO request parser, responses, HttpServer."""

from .request import Headers, HttpError, Request, RequestParser, header_tokens
from .response import Response, error_response
from .server import HttpServer, RequestReader, refuse, send_response
from .responder import HealthCheck, Responder, answer
from .router import Route, Router
from .static import StaticFiles

__all__ = ["Headers", "HttpError", "Request", "RequestParser", "header_tokens",
           "Response", "error_response", "HttpServer", "RequestReader", "refuse", "send_response",
           "Router", "Route", "StaticFiles", "Responder", "HealthCheck", "answer"]
