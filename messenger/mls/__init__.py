"""Messaging Layer Security (RFC 9420), sans-I/O, on ``cryptography``.

The public surface for applications: create or join a :class:`Group`, make
KeyPackages with :func:`generate_key_package`, and handle the events that
:meth:`Group.process` returns. Randomness is passed in (``os.urandom`` in
production) and nothing here reads a clock, a socket or a file.

Lower layers (codec, cipher suites, HPKE, trees, key schedule, framing) are
importable from their own modules, named after the RFC concept they hold.
"""

from __future__ import annotations

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
from .events import ApplicationMessage, CommitResult, Event, Member, ProposalReceived, StagedCommit
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
