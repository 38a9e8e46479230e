"""The OpenAPI 3.1 description, generated from :data:`messenger.api.routes.ROUTES`.

Models, fields and error codes come from :mod:`messenger.api`, so the
description cannot drift from what the server validates.
"""

from __future__ import annotations

from typing import Any

from messenger.api import models
from messenger.api.blobs import (
    HEADER_BLOB_ACCESS,
    HEADER_GROUP_TOKEN,
    MAX_BLOB_PART_BYTES,
    OCTET_STREAM,
)
from messenger.api.errors import HTTP_STATUS, ErrorCode
from messenger.api.routes import QUEUE_WEBSOCKET, ROUTES, Route
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_QUEUE,
    HEADER_QUEUE_SIGNATURE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
)

from .links import OPTIONALLY_SIGNED_ROUTES

__all__ = ["openapi_document"]

_ERROR_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": [str(c) for c in ErrorCode]},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _models() -> list[type[models.Model]]:
    found: list[type[models.Model]] = []
    for name in models.__all__:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, models.Model) and value.FIELDS:
            found.append(value)
    return found


#: A raw body or answer: bytes of a blob (docs/attachments.md §3).
_RAW_SCHEMA: dict[str, object] = {"type": "string", "format": "binary"}


def _ok_content(route: Route) -> dict[str, Any]:
    if route.raw_response:
        return {OCTET_STREAM: {"schema": _RAW_SCHEMA}}
    if route.response is None:
        return {}
    return {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{route.response.__name__}"}}
    }


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}",
        "responses": {"200": {"description": "OK", "content": _ok_content(route)}},
    }
    parameters: list[dict[str, Any]] = []
    if "{group_id}" in route.path:
        parameters.append(
            {
                "name": "group_id",
                "in": "path",
                "required": True,
                "description": "MLS group ID, unpadded base64url",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            }
        )
    if "{blob_id}" in route.path:
        parameters.append(
            {
                "name": "blob_id",
                "in": "path",
                "required": True,
                "description": "blob ID, unpadded base64url",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            }
        )
        if route.method not in ("PUT", "DELETE"):
            parameters.append(
                {
                    "name": HEADER_BLOB_ACCESS,
                    "in": "header",
                    "required": False,
                    "description": "the access capability (32 bytes, unpadded base64url)",
                    "schema": {"type": "string"},
                }
            )
        if route.method != "DELETE":
            parameters.append(
                {
                    "name": HEADER_GROUP_TOKEN,
                    "in": "header",
                    "required": False,
                    "description": (
                        "the group's current send token (32 bytes, unpadded base64url): "
                        "needed where membership is checked, for a group sealed under its "
                        "members' keys"
                    ),
                    "schema": {"type": "string"},
                }
            )
    if route.proves_queue:
        # docs/metadata.md §1: no row names a keyed queue, so the request shows it.
        parameters.extend(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": (
                    f"queue proof: {what}; needed once the client's queue has a key of "
                    "its own (the route needs the queue)"
                ),
                "schema": {"type": "string"},
            }
            for name, what in (
                (HEADER_QUEUE, "the client's queue ID"),
                (
                    HEADER_QUEUE_SIGNATURE,
                    "the queue key's signature over "
                    "messenger.api.signing.queue_proof_message (unpadded base64url)",
                ),
            )
        )
    for field in route.query:
        parameters.append(
            {
                "name": field.name,
                "in": "query",
                "required": not field.optional,
                "schema": field.schema(),
            }
        )
    if parameters:
        op["parameters"] = parameters
    if route.raw_body:
        op["requestBody"] = {
            "required": True,
            "description": f"raw bytes, at most {MAX_BLOB_PART_BYTES}",
            "content": {OCTET_STREAM: {"schema": _RAW_SCHEMA}},
        }
    elif route.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{route.request.__name__}"}
                }
            },
        }
    if route.signed and route.queue_request:
        # A client's signed request, or a queue request (the queue key alone).
        op["security"] = [{"requestSignature": []}, {"queueSignature": []}]
    elif route.signed:
        op["security"] = [{"requestSignature": []}]
    elif (route.method, route.path) in OPTIONALLY_SIGNED_ROUTES:
        # Anonymous, or signed (then verified): the link mailbox (links.py),
        # commits (sealed, or signed when external).
        op["security"] = [{}, {"requestSignature": []}]
    by_status: dict[int, list[str]] = {}
    for code in route.errors:
        by_status.setdefault(HTTP_STATUS[code], []).append(str(code))
    for status, codes in sorted(by_status.items()):
        op["responses"][str(status)] = {
            "description": "error codes: " + ", ".join(codes),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return op


def openapi_document(version: str) -> dict[str, Any]:
    """The whole description."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    schemas: dict[str, object] = {m.__name__: m.json_schema() for m in _models()}
    schemas["Error"] = _ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Messenger home server",
            "version": version,
            "description": (
                "Delivery and Authentication Service for an MLS (RFC 9420) messenger. "
                "Signed requests carry the headers "
                f"{HEADER_CLIENT}, {HEADER_TIMESTAMP}, {HEADER_NONCE} and {HEADER_SIGNATURE} "
                "(see messenger.api.signing). "
                f"Real-time push: WebSocket at {QUEUE_WEBSOCKET}?after=<seq>, signed like a GET "
                "(or a queue request); "
                "the server sends PushMessages frames, the client sends PushAck frames "
                "and gets PushAcked back."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "requestSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": HEADER_SIGNATURE,
                    "description": "Ed25519 signature over messenger.api.signing.canonical_request",
                },
                "queueSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": HEADER_QUEUE_SIGNATURE,
                    "description": (
                        f"A queue request: {HEADER_QUEUE}, {HEADER_TIMESTAMP}, {HEADER_NONCE} "
                        "and the queue key's Ed25519 signature over "
                        "messenger.api.signing.queue_request; no client"
                    ),
                },
            },
        },
    }
