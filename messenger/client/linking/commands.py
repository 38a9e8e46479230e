"""The command line's device commands: ``link``, ``devices``, ``unlink``.

``messenger-cli link`` (on a device of the account) prints the link code
and, when segno is installed (the ``[app]`` extra), a QR code of its URI;
waits for the new device's offer, asks ``Link <name>? [y/N]`` and links it,
with the history unless ``--no-history``.

``messenger-cli link --join CODE --server URL --name NAME`` (on the new
computer, a profile without an account) makes the profile a device of that
account. ``CODE`` may also be the ``messenger://link?...`` URI, which names
its server.

``messenger-cli devices`` lists the account's devices; ``messenger-cli
unlink CLIENT_ID`` removes one (docs/devices.md §5).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
from typing import IO, TYPE_CHECKING, Final, TextIO

from ..errors import ClientError, LinkCodeError
from .code import parse_link_code
from .models import LinkProgress, LinkStage

if TYPE_CHECKING:
    from ..client import MessengerClient

__all__ = ["COMMANDS", "add_parsers", "creates_profile", "run"]

COMMANDS: Final = frozenset({"link", "devices", "unlink"})
_FLUSH_S: Final = 30.0

_STAGES: Final = {
    LinkStage.WAITING_FOR_DEVICE: "Waiting for the other device...",
    LinkStage.WAITING_FOR_APPROVAL: "Approve the link on your other device.",
    LinkStage.REGISTERING: "Registering the device...",
    LinkStage.TRANSFERRING_HISTORY: "Transferring the history",
    LinkStage.JOINING_CONVERSATIONS: "Joining the conversations",
    LinkStage.DONE: "Done.",
}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The device commands' parsers."""
    p = sub.add_parser(
        "link",
        help="link a new device to this account (or, with --join, this profile to an account)",
    )
    p.add_argument("--no-history", action="store_true", help="do not send the message history")
    p.add_argument(
        "--join", metavar="CODE", help="the code (or messenger://link URI) of the other device"
    )
    p.add_argument("--server", help="the server, for a typed --join code")
    p.add_argument("--name", help="this device's name, with --join (e.g. Desktop)")
    sub.add_parser("devices", help="list this account's devices")
    p = sub.add_parser("unlink", help="remove a device from this account")
    p.add_argument("client_id", metavar="CLIENT_ID")


def creates_profile(args: argparse.Namespace) -> bool:
    """Whether the command may create its profile (joining an account)."""
    return args.command == "link" and args.join is not None


async def run(
    client: MessengerClient, args: argparse.Namespace, out: TextIO, answers: IO[bytes] | None
) -> int:
    """Run a device command; the exit status."""
    if args.command == "devices":
        return await _devices(client, out)
    if args.command == "unlink":
        await client.remove_device(args.client_id)
        print(f"Removed device {args.client_id}.", file=out)
        return 0
    if args.join is not None:
        return await _join(client, args, out)
    return await _link(client, args, out, answers)


def _progress(out: TextIO) -> LinkProgressPrinter:
    return LinkProgressPrinter(out)


class LinkProgressPrinter:
    """Prints each stage once, and fractions in steps of a tenth."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._shown: tuple[LinkStage, int] | None = None

    def __call__(self, progress: LinkProgress) -> None:
        tenth = -1 if progress.fraction is None else int(progress.fraction * 10)
        key = (progress.stage, tenth)
        if self._shown is not None and (
            key == self._shown or (progress.stage == self._shown[0] and tenth < 0)
        ):
            return
        self._shown = key
        text = _STAGES[progress.stage]
        if progress.fraction is not None and progress.stage is not LinkStage.DONE:
            text += f" {tenth * 10}%"
        print(text, file=self._out, flush=True)


async def _join(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> int:
    if not args.name:
        raise LinkCodeError("no --name", user_message="Name this device with --name.")
    code = parse_link_code(args.join, server_url=args.server)
    if code.server_url is None:
        raise LinkCodeError("no --server", user_message="Give the server with --server.")
    info = await client.link_account(code, device_name=args.name, progress=_progress(out))
    try:  # its name and first sync records reach the other devices now
        await client.flush(_FLUSH_S)
    except (ClientError, TimeoutError):
        print("Some changes are still queued; they are sent on the next sync.", file=out)
    print(f"Linked to account {info.account_id} on {info.server_url}.", file=out)
    return 0


def _qr(uri: str) -> str | None:
    """The QR code of ``uri`` for a terminal, if segno is installed."""
    try:
        import segno
    except ImportError:
        return None
    buffer = io.StringIO()
    segno.make(uri, error="m").terminal(out=buffer, compact=True)
    return buffer.getvalue()


async def _read_answer(answers: IO[bytes] | None) -> str:
    if answers is None:
        return ""
    line = await asyncio.to_thread(answers.readline)
    return line.decode("utf-8", "replace").strip()


async def _link(
    client: MessengerClient, args: argparse.Namespace, out: TextIO, answers: IO[bytes] | None
) -> int:
    await client.start()  # its outbox sends the Adds of the new device
    link = await client.start_link()
    try:
        qr = _qr(link.code.uri)
        if qr is not None:
            print(qr, file=out)
        print(f"Link code: {link.code.text}", file=out)
        print(f"Or open: {link.code.uri}", file=out)
        expires = datetime.datetime.fromtimestamp(link.expires_at / 1000).strftime("%H:%M")
        print(f"Waiting for the new device (the code works until {expires})...", file=out)
        out.flush()
        offer = await link.wait_offer()
        print(f"Link {offer.device_name}? [y/N] ", end="", file=out, flush=True)
        if (await _read_answer(answers)).lower() not in ("y", "yes"):
            await link.decline()
            print("Declined.", file=out)
            return 1
        await link.approve(history=not args.no_history, progress=_progress(out))
        print(f"Linked {offer.device_name}.", file=out)
        return 0
    except BaseException:
        await link.cancel()
        raise


async def _devices(client: MessengerClient, out: TextIO) -> int:
    for device in await client.devices():
        seen = (
            datetime.datetime.fromtimestamp(device.last_seen_at / 1000).strftime("%Y-%m-%d %H:%M")
            if device.last_seen_at is not None
            else "never"
        )
        marker = "  (this device)" if device.this_device else ""
        unverified = "" if device.verified else "  UNVERIFIED"
        print(
            f"{device.client_id}  {device.name or '(unnamed)'}  last seen {seen}"
            f"{marker}{unverified}",
            file=out,
        )
    return 0
