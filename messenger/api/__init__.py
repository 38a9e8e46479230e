"""The client-server contract as plain data (stdlib only).

* :mod:`~messenger.api.routes` -- paths and the route table;
* :mod:`~messenger.api.models` -- request/response dataclasses that validate
  their JSON form;
* :mod:`~messenger.api.errors` -- error codes and their HTTP statuses;
* :mod:`~messenger.api.signing` -- the byte strings that are signed (requests,
  proof of possession, credentials);
* :mod:`~messenger.api.pow` -- the registration proof of work.

The client (``messenger.client``) and the server (``messenger.server``) both
build on these and on nothing of each other.
"""

from __future__ import annotations

from .errors import HTTP_STATUS, ApiError, ErrorCode
from .fields import b64decode, b64encode

__all__ = [
    "HTTP_STATUS",
    "ApiError",
    "ErrorCode",
    "b64decode",
    "b64encode",
]
