"""The ASGI application: :func:`create_app` wires config, storage and routes.

Run it with uvicorn (``messenger-server``) or mount it in tests through
``httpx.ASGITransport``; either way the lifespan starts and stops the
:class:`~messenger.server.state.ServerState` (connect, migrate, listen,
sweep).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from messenger.api.errors import ApiError, ErrorCode

from .config import ServerConfig
from .routes import error_response, http_routes
from .state import ServerState
from .storage import Database
from .websocket import websocket_routes

__all__ = ["create_app"]

_log = logging.getLogger("messenger.server.http")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        error = ApiError(ErrorCode.NOT_FOUND, "no such route")
    elif status == 405:
        error = ApiError(ErrorCode.METHOD_NOT_ALLOWED, "method not allowed on this route")
    else:
        error = ApiError(ErrorCode.INTERNAL, "internal server error")
    return error_response(error)


async def _server_error(request: Request, exc: Exception) -> Response:
    _log.error("unhandled exception", exc_info=exc)
    return Response(
        json.dumps(ApiError(ErrorCode.INTERNAL, "internal server error").to_json()),
        status_code=500,
        media_type="application/json",
    )


def create_app(
    config: ServerConfig,
    *,
    clock: Callable[[], float] = time.time,
    database: Database | None = None,
    run_sweeper: bool = True,
) -> Starlette:
    """The server as an ASGI app; ``app.state.server`` is its :class:`ServerState`.

    ``clock`` (seconds since the epoch) and ``database`` are for tests;
    ``run_sweeper=False`` leaves retention to explicit
    :meth:`~messenger.server.delivery.DeliveryService.sweep` calls.
    """
    state = ServerState(config, clock=clock, database=database, run_sweeper=run_sweeper)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = Starlette(
        routes=[*http_routes(), *websocket_routes()],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    # No redirect from "/path/" to "/path": Starlette builds its Location from
    # the request's Host header, and an API client never needs it (a 404 instead).
    app.router.redirect_slashes = False
    app.state.server = state
    return app
