"""One side of a device link in a process of its own, stopped for good at a chosen point.

Test-only entry point of the kill -9 tests (``test_multi_device_link_crash.py``):
it runs the existing device's side (``creator``) or the new device's side
(``joiner``) of a link, and at ``POINT`` writes the marker file and waits
forever, so that the test can kill it with SIGKILL exactly there::

    python tests/integration/link_process.py creator DATA PROFILE POINT MARKER CODE_FILE
    python tests/integration/link_process.py joiner DATA PROFILE POINT MARKER URI

Creator points: ``registered`` (the client is registered and recorded, the
answer not posted), ``adding`` (the Adds are queued, the new device not yet
told). Joiner points: ``answered`` (the identity is written, *ready* not
posted), ``ready`` (*ready* posted, the history received, *done* not posted).
The passphrase comes from ``MESSENGER_PASSPHRASE``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import keyring.backends.fail

from messenger.client import ClientOptions, MessengerClient, parse_link_code
from messenger.client.linking import existing, joining
from messenger.client.linking import payloads as p
from messenger.client.net import Backoff
from messenger.client.store import Keychain

CREATOR_POINTS = {"registered": p.Kind.ANSWER, "adding": p.Kind.ADDED}
JOINER_POINTS = {"answered": p.Ready, "ready": p.Done}
OPTIONS = ClientOptions(backoff=Backoff(base=0.05, maximum=1.0), timeout=10.0)


def _keychain() -> Keychain:
    return Keychain(backend=keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]


async def _pause(marker: Path) -> None:
    marker.write_text(str(os.getpid()), encoding="ascii")
    await asyncio.Event().wait()  # until SIGKILL


async def _creator(args: argparse.Namespace) -> None:
    marker, kind = Path(args.marker), CREATOR_POINTS[args.point]
    post = existing.DeviceLink._post

    async def paused_post(self: existing.DeviceLink, plaintext: bytes) -> None:
        if plaintext[0] == kind:
            await _pause(marker)
        await post(self, plaintext)

    existing.DeviceLink._post = paused_post  # type: ignore[method-assign]
    client = await MessengerClient.open(
        args.profile,
        os.environ["MESSENGER_PASSPHRASE"],
        data_dir=Path(args.data_dir),
        keychain=_keychain(),
        options=OPTIONS,
    )
    try:
        link = await client.start_link()
        Path(args.extra).write_text(link.code.uri, encoding="ascii")
        await link.wait_offer()
        await link.approve(history=True)
    finally:
        await client.close()


async def _joiner(args: argparse.Namespace) -> None:
    marker, kind = Path(args.marker), JOINER_POINTS[args.point]
    post = joining.Joining._post

    async def paused_post(self: joining.Joining, payload: Any) -> None:
        if isinstance(payload, kind):
            await _pause(marker)
        await post(self, payload)

    joining.Joining._post = paused_post  # type: ignore[method-assign]
    client = await MessengerClient.create(
        args.profile,
        os.environ["MESSENGER_PASSPHRASE"],
        data_dir=Path(args.data_dir),
        keychain=_keychain(),
        options=OPTIONS,
    )
    try:
        await client.link_account(parse_link_code(args.extra), device_name="Desktop")
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("side", choices=("creator", "joiner"))
    parser.add_argument("data_dir")
    parser.add_argument("profile")
    parser.add_argument("point", choices=(*CREATOR_POINTS, *JOINER_POINTS))
    parser.add_argument("marker")
    parser.add_argument("extra", help="creator: where to write the URI; joiner: the URI")
    args = parser.parse_args()
    asyncio.run(_creator(args) if args.side == "creator" else _joiner(args))
    print("the link finished without reaching the pause point", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
