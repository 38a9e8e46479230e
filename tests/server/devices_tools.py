"""Helpers of the several-devices tests: account keys, certificates, removal, links."""

from __future__ import annotations

import os
import time

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.credential import encode_credential
from messenger.api.pow import solve_pow
from messenger.api.signing import device_certificate_tbs, possession_message
from messenger.mls.credentials import Credential as MlsCredential
from messenger.mls.group import Group

from . import mls_data
from .client import ApiClient, Identity, public_bytes
from .conftest import TestServer


def certificate(
    account_key: Ed25519PrivateKey, device_key: Ed25519PrivateKey, certified_at: int | None = None
) -> tuple[int, bytes]:
    """``(certified_at, device_certificate)`` of ``device_key`` by ``account_key``."""
    at = int(time.time() * 1000) if certified_at is None else certified_at
    tbs = device_certificate_tbs(public_bytes(account_key), public_bytes(device_key), at)
    return at, account_key.sign(tbs)


async def register_request(
    client: ApiClient,
    key: Ed25519PrivateKey,
    account_key: Ed25519PrivateKey | None,
    *,
    signed_by: Ed25519PrivateKey | None = None,
) -> m.RegisterRequest:
    """A registration request for ``key``, certified by ``account_key`` (if any).

    ``signed_by`` makes the certificate with another key than ``account_key``
    (a forged certificate).
    """
    challenge = await client.call("POST", r.REGISTER_CHALLENGE, None, m.Challenge, signed=False)
    pub = public_bytes(key)
    fields: dict[str, object] = {}
    if account_key is not None:
        at, cert = certificate(signed_by or account_key, key)
        fields = {
            "account_key": public_bytes(account_key),
            "certified_at": at,
            "device_certificate": cert,
        }
    return m.RegisterRequest(
        signature_key=pub,
        challenge=challenge.challenge,
        pow_nonce=solve_pow(challenge.challenge, pub, challenge.difficulty),
        proof=key.sign(possession_message(challenge.challenge, pub)),
        **fields,  # type: ignore[arg-type]
    )


async def register_with_key(
    server: TestServer, account_key: Ed25519PrivateKey | None = None
) -> tuple[ApiClient, Ed25519PrivateKey]:
    """A registered first device of an account with a key (a new one if not given)."""
    client = server.client()
    key = Ed25519PrivateKey.generate()
    account_key = account_key or Ed25519PrivateKey.generate()
    request = await register_request(client, key, account_key)
    response = await client.call("POST", r.REGISTER, request, m.RegisterResponse, signed=False)
    client.identity = Identity(
        key, response.account_id, response.client_id, response.queue_id, response.credential
    )
    return client, account_key


def add_client_request(
    existing: ApiClient,
    key: Ed25519PrivateKey,
    account_key: Ed25519PrivateKey | None,
    *,
    certified_key: Ed25519PrivateKey | None = None,
) -> m.AddClientRequest:
    """Adding ``key`` to ``existing``'s account, certified by ``account_key`` if given.

    ``certified_key``: the key the certificate names (another key than the
    one added, a certificate moved over).
    """
    pub = public_bytes(key)
    proof = key.sign(possession_message(existing.me.account_id.encode(), pub))
    if account_key is None:
        return m.AddClientRequest(pub, proof)
    at, cert = certificate(account_key, certified_key or key)
    return m.AddClientRequest(pub, proof, at, cert)


async def add_device(existing: ApiClient, account_key: Ed25519PrivateKey | None) -> ApiClient:
    """A new, certified device of ``existing``'s account."""
    key = Ed25519PrivateKey.generate()
    response = await existing.call(
        "POST", r.CLIENTS, add_client_request(existing, key, account_key), m.AddClientResponse
    )
    identity = Identity(
        key, existing.me.account_id, response.client_id, response.queue_id, response.credential
    )
    return ApiClient(existing.http, identity, existing.clock)


async def certify(
    client: ApiClient, account_key: Ed25519PrivateKey, *, signed_by: Ed25519PrivateKey | None = None
) -> httpx.Response:
    """``POST /v1/clients/certificate`` for ``client`` (raw response)."""
    at, cert = certificate(signed_by or account_key, client.me.key)
    request = m.CertifyClientRequest(public_bytes(account_key), at, cert)
    return await client.raw("POST", r.CLIENT_CERTIFICATE, request)


async def remove(client: ApiClient, client_id: str) -> httpx.Response:
    """``DELETE /v1/clients/{client_id}`` signed by ``client`` (raw response)."""
    return await client.raw("DELETE", r.client_path(client_id))


def key_package_v2(client: ApiClient, credential: m.Credential | None = None) -> bytes:
    """A KeyPackage carrying ``credential`` (default: the client's) as the clients build it."""
    credential = credential or client.me.credential
    assert credential is not None
    return mls_data.key_package(encode_credential(credential), signature_key=client.me.key)


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def external_commit(
    group_info: bytes, client: ApiClient, *, resync: int | None = None
) -> tuple[Group, bytes]:
    """A real external commit of ``client`` with its (version 2) credential
    (RFC 9420 §12.4.3.2; ``resync``: the leaf it replaces)."""
    assert client.me.credential is not None
    group, result = Group.join_external(
        group_info,
        credential=MlsCredential.basic(encode_credential(client.me.credential)),
        signature_private_key=mls_data.private_key_bytes(client.me.key),
        random=os.urandom,
        resync=resync,
    )
    return group, result.message
