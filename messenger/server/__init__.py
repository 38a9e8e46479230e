"""The self-hostable home server: Delivery and Authentication Service (RFC 9750).

An ASGI app (:func:`create_app`, Starlette) run by uvicorn through the
``messenger-server`` command. Storage is SQLite (default) or PostgreSQL;
see docs/server.md for running it and docs/threat-model.md for what it
stores and learns.
"""

from __future__ import annotations

from .app import create_app
from .config import ConfigError, ServerConfig, load_config

__all__ = [
    "ConfigError",
    "ServerConfig",
    "create_app",
    "load_config",
]
