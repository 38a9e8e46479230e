"""The public surface of ``messenger.mls`` is pinned (architecture guide, convention 8)."""

from __future__ import annotations

import importlib
import pkgutil

import messenger.mls

EXPECTED = {
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
}


def test_package_all_is_pinned() -> None:
    assert set(messenger.mls.__all__) == EXPECTED
    assert len(messenger.mls.__all__) == len(EXPECTED), "duplicate names in __all__"


def test_every_exported_name_exists() -> None:
    missing = [name for name in messenger.mls.__all__ if not hasattr(messenger.mls, name)]
    assert missing == []


def test_every_module_declares_its_public_names() -> None:
    problems: list[str] = []
    for info in pkgutil.iter_modules(messenger.mls.__path__):
        module = importlib.import_module(f"messenger.mls.{info.name}")
        names = getattr(module, "__all__", None)
        if names is None:
            problems.append(f"{info.name}: no __all__")
            continue
        problems.extend(f"{info.name}: {n} missing" for n in names if not hasattr(module, n))
    assert problems == []
