"""The command line's attachment commands: ``send-file`` and ``download`` (docs/attachments.md §4).

Both start the client's background work (the transfer queue, the outbox,
the push listener) and wait until the file is uploaded and its message
sent, or downloaded and saved, printing the progress on standard error.
``download`` saves under the name given with ``--output``; without it,
under the sender's file name made safe (one path component, no control
characters) in the current directory, never replacing a file there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from ..errors import ClientError
from ..events import TransferProgress
from ..store.attachments import TransferState
from ..store.messages import MessageStatus
from .media import safe_file_name

if TYPE_CHECKING:
    from ..client import MessengerClient
    from ..models import MessageView

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS: Final = frozenset({"send-file", "download"})
#: How often the state is read again while waiting (events also wake the wait).
_POLL_S: Final = 1.0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The attachment commands' parsers."""
    p = sub.add_parser("send-file", help="send a file (waits until it is uploaded and sent)")
    p.add_argument("target", help="a conversation, or a contact for a one-to-one chat")
    p.add_argument("path", type=Path)
    p.add_argument("--caption", help="text shown with the file")
    p = sub.add_parser("download", help="download a received file and save it")
    p.add_argument("message_id", type=int)
    p.add_argument("--output", type=Path, help="where to save it (default: its name, here)")


async def run(
    client: MessengerClient,
    args: argparse.Namespace,
    out: TextIO,
    target: int | None = None,
) -> int:
    """Run an attachment command; the exit status. ``target``: the conversation of ``send-file``."""
    if args.command == "send-file":
        assert target is not None
        return await _send_file(client, target, args, out)
    return await _download(client, args, out)


async def _send_file(
    client: MessengerClient, conversation_id: int, args: argparse.Namespace, out: TextIO
) -> int:
    message = await client.send_file(conversation_id, args.path, caption=args.caption)
    print(f"#{message.id}", file=out)

    def done(view: MessageView) -> bool | None:
        attachment = view.attachment
        if attachment is not None and attachment.state is TransferState.UPLOAD_FAILED:
            return False
        return view.message.status in (MessageStatus.SENT, MessageStatus.READ) or None

    return await _follow(client, message.id, done, "Sent.", out)


async def _download(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> int:
    view = await client.message(args.message_id)
    if view.attachment is None:
        print("That message has no file.", file=sys.stderr)
        return 1
    destination = args.output or Path.cwd() / safe_file_name(view.attachment.name)
    if args.output is None and destination.exists():
        print(f"{destination.name} exists here; choose a name with --output.", file=sys.stderr)
        return 1
    if not view.attachment.readable:
        await client.download(args.message_id)

        def done(view: MessageView) -> bool | None:
            attachment = view.attachment
            if attachment is None or attachment.state in (TransferState.FAILED, TransferState.GONE):
                return False
            return attachment.state is TransferState.DOWNLOADED or None

        status = await _follow(client, args.message_id, done, None, out)
        if status:
            return status
    saved = await client.save_attachment(args.message_id, destination)
    print(saved, file=out)
    return 0


async def _follow(
    client: MessengerClient,
    message_id: int,
    done: Callable[[MessageView], bool | None],
    success: str | None,
    out: TextIO,
) -> int:
    """Start the client and wait until ``done`` says True (0) or False (1, with the sentence)."""
    events = client.events()
    await client.start()
    shown = -1
    iterator = aiter(events)
    try:
        while True:
            view = await client.message(message_id)
            finished = done(view)
            if finished is not None:
                if finished:
                    if success:
                        print(success, file=out)
                    return 0
                error = view.attachment.error if view.attachment is not None else None
                print(error or "The transfer did not finish.", file=sys.stderr)
                return 1
            with contextlib.suppress(TimeoutError):
                event = await asyncio.wait_for(anext(iterator), _POLL_S)
                if isinstance(event, TransferProgress) and event.message_id == message_id:
                    percent = 100 * event.done // max(1, event.total)
                    if percent != shown:
                        shown = percent
                        print(f"{percent}%", file=sys.stderr)
    except StopAsyncIteration:
        raise ClientError("the client closed") from None
