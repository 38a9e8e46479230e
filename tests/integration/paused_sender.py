"""A client process that sends one message and stops for good inside the outbox.

Test-only entry point of the kill -9 tests (``test_end_to_end.py``): it opens
a profile like ``messenger-cli send`` does, with an outbox hook
(:class:`~messenger.client.ClientOptions` ``before_send`` or ``after_send``)
that writes the marker file and then waits forever, so that the test can kill
the process with SIGKILL at exactly that point of the send::

    python tests/integration/paused_sender.py DATA_DIR PROFILE CONVERSATION TEXT \\
        {before_send,after_send} MARKER

The passphrase comes from ``MESSENGER_PASSPHRASE``, as for the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import keyring.backends.fail

from messenger.client import ClientOptions, MessengerClient
from messenger.client.store import Keychain

POINTS = ("before_send", "after_send")


async def _send(args: argparse.Namespace) -> None:
    marker = Path(args.marker)

    async def pause() -> None:
        marker.write_text(str(os.getpid()), encoding="ascii")
        await asyncio.Event().wait()  # until SIGKILL

    if args.point == "before_send":
        options = ClientOptions(before_send=pause)
    else:
        options = ClientOptions(after_send=pause)
    client = await MessengerClient.open(
        args.profile,
        os.environ["MESSENGER_PASSPHRASE"],
        data_dir=Path(args.data_dir),
        keychain=Keychain(backend=keyring.backends.fail.Keyring()),  # type: ignore[no-untyped-call]
        options=options,
    )
    try:
        await client.send_text(args.conversation, args.text)
        await client.flush()
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("profile")
    parser.add_argument("conversation", type=int)
    parser.add_argument("text")
    parser.add_argument("point", choices=POINTS)
    parser.add_argument("marker")
    asyncio.run(_send(parser.parse_args()))
    print("the send finished without reaching the pause point", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
