"""Messaging Layer Security (RFC 9420), sans-I/O, on ``cryptography``.

The public surface for applications: create or join a :class:`Group`, make
KeyPackages with :func:`generate_key_package`, and handle the events that
:meth:`Group.process` returns. Randomness is passed in (``os.urandom`` in
production) and nothing here reads a clock, a socket or a file.

Lower layers (codec, cipher suites, HPKE, trees, key schedule, framing) are
importable from their own modules, named after the RFC concept they hold.

The names below are imported on first use (PEP 562): importing one lower
layer (``messenger.mls.codec``, as the client's message content does when the
desktop app opens its window) does not load the whole protocol.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ciphersuite import CIPHER_SUITES, CipherSuite, RandomSource, get_cipher_suite
    from .credentials import Certificate, Credential, CredentialType
    from .errors import (
        AuthenticationError,
        DecodeError,
        DecryptionError,
        EpochError,
        InvalidMessageError,
        MLSError,
        UsageError,
        ValidationError,
    )
    from .events import (
        ApplicationMessage,
        CommitResult,
        Event,
        Member,
        ProposalReceived,
        StagedCommit,
    )
    from .extensions import Extension, ExtensionType
    from .group import ExternalPskLookup, Group, IdentityValidator, accept_basic_credentials
    from .group_state import GroupConfig
    from .key_package import KeyPackage
    from .key_package_bundle import KeyPackageBundle, generate_key_package
    from .messages import MLSMessage

__all__ = [
    "CIPHER_SUITES",
    "ApplicationMessage",
    "AuthenticationError",
    "Certificate",
    "CipherSuite",
    "CommitResult",
    "Credential",
    "CredentialType",
    "DecodeError",
    "DecryptionError",
    "EpochError",
    "Event",
    "Extension",
    "ExtensionType",
    "ExternalPskLookup",
    "Group",
    "GroupConfig",
    "IdentityValidator",
    "InvalidMessageError",
    "KeyPackage",
    "KeyPackageBundle",
    "MLSError",
    "MLSMessage",
    "Member",
    "ProposalReceived",
    "RandomSource",
    "StagedCommit",
    "UsageError",
    "ValidationError",
    "accept_basic_credentials",
    "generate_key_package",
    "get_cipher_suite",
]

#: The module each public name comes from (imported on first use).
_SOURCES: dict[str, str] = {
    name: module
    for module, names in {
        ".ciphersuite": ("CIPHER_SUITES", "CipherSuite", "RandomSource", "get_cipher_suite"),
        ".credentials": ("Certificate", "Credential", "CredentialType"),
        ".errors": (
            "AuthenticationError",
            "DecodeError",
            "DecryptionError",
            "EpochError",
            "InvalidMessageError",
            "MLSError",
            "UsageError",
            "ValidationError",
        ),
        ".events": (
            "ApplicationMessage",
            "CommitResult",
            "Event",
            "Member",
            "ProposalReceived",
            "StagedCommit",
        ),
        ".extensions": ("Extension", "ExtensionType"),
        ".group": ("ExternalPskLookup", "Group", "IdentityValidator", "accept_basic_credentials"),
        ".group_state": ("GroupConfig",),
        ".key_package": ("KeyPackage",),
        ".key_package_bundle": ("KeyPackageBundle", "generate_key_package"),
        ".messages": ("MLSMessage",),
    }.items()
    for name in names
}


if not TYPE_CHECKING:  # for type checkers the names are the imports above

    def __getattr__(name: str) -> Any:
        module = _SOURCES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_SOURCES})
