"""``messenger-cli``: the messenger without a desktop, for scripts, tests and terminals.

::

    messenger-cli [--data-dir DIR] [--profile NAME] [--no-keyring] COMMAND ...

    create-account SERVER [--handle H]   a new profile's anonymous account
    whoami                               the account, its address and invite link
    add-contact ADDRESS [--name N]       handle@server, a handle, or an invite link
    contacts | conversations
    create-group NAME [MEMBER ...]       a group with contacts in it
    add-member CONV MEMBER ...  |  remove-member CONV MEMBER
    rename CONV NAME  |  leave CONV
    send TARGET [TEXT ... | -]           TARGET: a conversation, or a contact (1:1)
    reply CONV MESSAGE_ID [TEXT ... | -]  |  edit CONV MESSAGE_ID [TEXT ... | -]
    delete CONV MESSAGE_ID  |  react CONV MESSAGE_ID EMOJI [--remove]
    history CONV [--limit N]             the newest messages
    listen [--count N] [--timeout S]     print messages as they arrive
    search QUERY ...                     full-text search
    safety-number CONTACT [--verified]   compare it with the contact out of band
    sync                                 fetch new messages and deliver queued ones
    demo                                 a local server and two clients chatting

CONV is a conversation number (see ``conversations``) or name; MEMBER and
CONTACT are a contact's handle, name or account ID.

The text of ``send``, ``reply`` and ``edit`` is read from standard input
when it is ``-``, or when it is left out and standard input is not a
terminal (UTF-8; one final line break is dropped). Words on the command line
are visible to every user of the machine (``ps``, ``/proc/<pid>/cmdline``)
and stay in the shell's history; standard input is not.

The store's passphrase comes from the ``MESSENGER_PASSPHRASE`` environment
variable, else it is asked for on the terminal (never echoed). With
``--no-keyring`` the OS keyring is never used, so the passphrase is always
needed. Errors are printed as one sentence; the exit status is 1 for an
error, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final, TextIO

import keyring.backends.fail

from .client import MessengerClient
from .content import MAX_TEXT_BYTES
from .errors import (
    ClientError,
    ConversationNotFoundError,
    MessageTooLongError,
    NetworkError,
    PassphraseRequiredError,
    ProfileNotFoundError,
    WrongPassphraseError,
)
from .events import MessageReceived, MessageUpdated
from .models import ConversationView, MessageView
from .profiles import Profiles
from .store.keychain import Keychain
from .store.messages import MessageKind, MessageStatus
from .store.search import HIGHLIGHT_END, HIGHLIGHT_START

__all__ = ["PASSPHRASE_ENV", "main", "message_text"]

PASSPHRASE_ENV: Final = "MESSENGER_PASSPHRASE"  # noqa: S105 (a variable name)
#: The commands whose text may come from standard input.
_TEXT_COMMANDS: Final = frozenset({"send", "reply", "edit"})
_STDIN_TEXT_HELP: Final = (
    "the message; '-', or nothing with input piped in, reads it from standard input "
    "(which, unlike arguments, other users cannot see with ps)"
)
#: How long a one-shot command waits for its sends to be accepted.
_FLUSH_TIMEOUT: Final = 60.0
_STATUS: Final = {
    MessageStatus.PENDING: " …",
    MessageStatus.SENT: " ✓",
    MessageStatus.DELIVERED: " ✓",
    MessageStatus.READ: " ✓✓",
    MessageStatus.FAILED: " ✗",
    MessageStatus.RECEIVED: "",
}


class UsageError(Exception):
    """Bad command-line usage (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messenger-cli", description="End-to-end encrypted messenger (command line)"
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (default: MESSENGER_HOME)")
    parser.add_argument("--profile", default="default", help="profile name (default: default)")
    parser.add_argument(
        "--no-keyring", action="store_true", help="never use the OS keyring (passphrase only)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("create-account", help="create the profile's anonymous account")
    p.add_argument("server", help="server URL, e.g. https://chat.example.org")
    p.add_argument("--handle", help="a handle others can find you by")
    sub.add_parser("whoami", help="show the account, its address and invite link")
    p = sub.add_parser("add-contact", help="add a contact by handle@server or invite link")
    p.add_argument("address")
    p.add_argument("--name", help="a display name for the contact")
    sub.add_parser("contacts", help="list contacts")
    sub.add_parser("conversations", help="list conversations")
    p = sub.add_parser("create-group", help="create a group")
    p.add_argument("name")
    p.add_argument("members", nargs="*")
    p = sub.add_parser("add-member", help="add contacts to a group")
    p.add_argument("conversation")
    p.add_argument("members", nargs="+")
    p = sub.add_parser("remove-member", help="remove a member from a group")
    p.add_argument("conversation")
    p.add_argument("member")
    p = sub.add_parser("rename", help="rename a group")
    p.add_argument("conversation")
    p.add_argument("name")
    p = sub.add_parser("leave", help="leave a conversation")
    p.add_argument("conversation")
    p = sub.add_parser("send", help="send a message")
    p.add_argument("target", help="a conversation, or a contact for a one-to-one chat")
    p.add_argument("text", nargs="*", help=_STDIN_TEXT_HELP)
    for name, what in (("reply", "reply to a message"), ("edit", "edit your message")):
        p = sub.add_parser(name, help=what)
        p.add_argument("conversation")
        p.add_argument("message_id", type=int)
        p.add_argument("text", nargs="*", help=_STDIN_TEXT_HELP)
    p = sub.add_parser("delete", help="delete your message for everyone")
    p.add_argument("conversation")
    p.add_argument("message_id", type=int)
    p = sub.add_parser("react", help="react to a message")
    p.add_argument("conversation")
    p.add_argument("message_id", type=int)
    p.add_argument("emoji")
    p.add_argument("--remove", action="store_true")
    p = sub.add_parser("history", help="show a conversation's newest messages")
    p.add_argument("conversation")
    p.add_argument("--limit", type=int, default=30)
    p = sub.add_parser("listen", help="print messages as they arrive")
    p.add_argument("--count", type=int, help="stop after this many messages")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p = sub.add_parser("search", help="search messages")
    p.add_argument("query", nargs="+")
    p = sub.add_parser("safety-number", help="show the safety number with a contact")
    p.add_argument("contact")
    p.add_argument("--verified", action="store_true", help="mark it as compared and verified")
    sub.add_parser("sync", help="fetch new messages and deliver queued ones")
    p = sub.add_parser("demo", help="run a local server and two clients chatting")
    p.add_argument("--port", type=int, default=0, help="server port (default: any free one)")
    return parser


# -- message text ------------------------------------------------------------------------------


def message_text(words: Sequence[str], stdin: IO[bytes] | None) -> str:
    """The text of ``send``/``reply``/``edit``: the words, or standard input.

    Standard input is read when the words are just ``-``, or when there
    are none and it is not a terminal; it must be UTF-8 (a byte-order mark
    and one final line break are dropped).
    """
    if words and list(words) != ["-"]:
        return " ".join(words)
    if stdin is None:
        raise UsageError("no message text, and no standard input to read it from")
    if not words and stdin.isatty():
        raise UsageError("give the message text, or '-' to read it from standard input")
    data = stdin.read(MAX_TEXT_BYTES + 8)  # room for a byte-order mark and a line break
    if stdin.read(1):
        raise MessageTooLongError(f"more than {MAX_TEXT_BYTES} bytes on standard input")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError("the message on standard input is not UTF-8") from None
    if text.endswith("\n"):
        text = text[:-1].removesuffix("\r")
    if not text:
        raise UsageError("the message is empty")
    return text


# -- passphrase and opening ----------------------------------------------------------------


def _can_prompt() -> bool:
    """Whether getpass can ask: a terminal on stdin, or (POSIX) a controlling terminal.

    The latter lets ``echo text | messenger-cli send bob`` still ask for
    the passphrase, as getpass reads it from /dev/tty.
    """
    if sys.stdin is not None and sys.stdin.isatty():
        return True
    if os.name != "posix":
        return False
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def _passphrase(*, confirm: bool) -> str:
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if not _can_prompt():
        raise UsageError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    first = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise UsageError("the passphrases differ")
    return first


def _keychain(args: argparse.Namespace) -> Keychain | None:
    if args.no_keyring:
        return Keychain(backend=keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    return None


async def _open(args: argparse.Namespace, *, create: bool = False) -> MessengerClient:
    keychain = _keychain(args)
    profiles = Profiles(args.data_dir)
    if create and not profiles.exists(args.profile):
        return await MessengerClient.create(
            args.profile, _passphrase(confirm=True), data_dir=args.data_dir, keychain=keychain
        )
    if not args.no_keyring:
        with contextlib.suppress(PassphraseRequiredError):
            return await MessengerClient.open(
                args.profile, data_dir=args.data_dir, keychain=keychain
            )
    return await MessengerClient.open(
        args.profile, _passphrase(confirm=False), data_dir=args.data_dir, keychain=keychain
    )


# -- printing -----------------------------------------------------------------------------------


def _time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%H:%M")


def format_message(view: MessageView) -> str:
    """One line of a timeline."""
    message = view.message
    if message.kind is MessageKind.SYSTEM:
        return f"      {_time(message.received_at)} — {message.body}"
    body = "(deleted)" if message.deleted else (message.body or "")
    if message.edited_at is not None and not message.deleted:
        body += " (edited)"
    if view.reply_to is not None:
        quoted = (view.reply_to.body or "(deleted)")[:40]
        body = f"↪ “{quoted}” {body}"
    reactions = " ".join(f"{r.emoji}{r.count if r.count > 1 else ''}" for r in view.reactions)
    status = _STATUS[message.status] if message.outgoing else ""
    line = f"#{message.id:<4} {_time(message.sent_at)} {view.sender_name}: {body}{status}"
    return f"{line}  [{reactions}]" if reactions else line


def _conversation_line(view: ConversationView) -> str:
    kind = "1:1" if view.conversation.kind == "direct" else "group"
    left = " (left)" if not view.active else ""
    unread = f" — {view.unread} unread" if view.unread else ""
    members = ", ".join(m.name for m in view.members)
    return f"{view.id:>4}  {kind:<5} {view.name}{left}{unread}  [{members}]"


async def _conversation(client: MessengerClient, ref: str) -> int:
    if ref.isdigit():
        return (await client.conversation(int(ref))).id
    wanted = ref.strip().lower()
    for view in await client.conversations():
        if view.name.lower() == wanted:
            return view.id
    raise ConversationNotFoundError(f"no conversation {ref!r}")


async def _target(client: MessengerClient, ref: str) -> int:
    """A conversation by number or name, else the 1:1 conversation with a contact."""
    try:
        return await _conversation(client, ref)
    except ConversationNotFoundError:
        contact = await client.find_contact(ref)
    return (await client.create_conversation(contact.account_id)).id


async def _best_effort_sync(client: MessengerClient, out: TextIO) -> None:
    try:
        await client.sync()
    except NetworkError as exc:
        print(f"(offline: {exc.user_message})", file=out)


# -- commands -----------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    command = args.command
    if command == "demo":
        from .demo import run_demo

        return await run_demo(out, port=args.port)
    client = await _open(args, create=command == "create-account")
    try:
        return await _command(client, args, out)
    finally:
        await client.close()


async def _command(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> int:
    command = args.command
    if command == "create-account":
        info = await client.create_account(args.server, args.handle)
        print(f"Account {info.account_id} on {info.server_url}", file=out)
        if info.address:
            print(f"Address: {info.address}", file=out)
        print(f"Invite link: {info.invite_link}", file=out)
        return 0
    if command == "whoami":
        account = await client.account()
        if account is None:
            print("No account yet: use create-account.", file=out)
            return 1
        print(f"Account {account.account_id} on {account.server_url}", file=out)
        print(f"Address: {account.address or '(no handle)'}", file=out)
        print(f"Invite link: {account.invite_link}", file=out)
        return 0
    if command == "add-contact":
        contact = await client.add_contact(args.address, display_name=args.name)
        print(f"Added {contact.display_name or contact.handle or contact.account_id}", file=out)
        return 0
    if command == "contacts":
        for contact in await client.contacts():
            verified = " (verified)" if contact.verified else ""
            name = contact.display_name or contact.handle or "-"
            print(f"{contact.account_id}  {name}{verified}", file=out)
        return 0
    if command in ("sync", "conversations", "history", "search"):
        await _best_effort_sync(client, out)
    if command == "sync":
        await client.flush(_FLUSH_TIMEOUT)
        return 0
    if command == "conversations":
        for view in await client.conversations():
            print(_conversation_line(view), file=out)
        return 0
    if command == "history":
        cid = await _conversation(client, args.conversation)
        for message in await client.messages(cid, limit=args.limit):
            print(format_message(message), file=out)
        return 0
    if command == "search":
        for hit in await client.search(" ".join(args.query)):
            snippet = hit.snippet.replace(HIGHLIGHT_START, "[").replace(HIGHLIGHT_END, "]")
            print(f"#{hit.message.id} in {hit.message.conversation_id}: {snippet}", file=out)
        return 0
    if command == "safety-number":
        contact = await client.find_contact(args.contact)
        number = (
            await client.mark_verified(contact.account_id)
            if args.verified
            else await client.safety_number(contact.account_id)
        )
        print(number.number, file=out)
        if number.verified:
            print("Verified.", file=out)
        elif number.changed:
            print("Their keys CHANGED since you verified them. Compare again.", file=out)
        return 0
    if command == "listen":
        return await _listen(client, args, out)
    await _change(client, args, out)
    await client.flush(_FLUSH_TIMEOUT)
    return 0


async def _members(client: MessengerClient, refs: Sequence[str]) -> list[str]:
    return [(await client.find_contact(ref)).account_id for ref in refs]


async def _change(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> None:
    """The commands that queue a send."""
    command = args.command
    if command == "create-group":
        conversation = await client.create_group(args.name, await _members(client, args.members))
        print(f"Created group {conversation.id}", file=out)
    elif command == "add-member":
        cid = await _conversation(client, args.conversation)
        await client.add_members(cid, await _members(client, args.members))
    elif command == "remove-member":
        cid = await _conversation(client, args.conversation)
        await client.remove_member(cid, (await client.find_contact(args.member)).account_id)
    elif command == "rename":
        await client.rename(await _conversation(client, args.conversation), args.name)
    elif command == "leave":
        await client.leave(await _conversation(client, args.conversation))
    elif command == "send":
        cid = await _target(client, args.target)
        message = await client.send_text(cid, args.message)
        print(f"#{message.id}", file=out)
    elif command == "reply":
        cid = await _conversation(client, args.conversation)
        await client.reply(cid, args.message_id, args.message)
    elif command == "edit":
        cid = await _conversation(client, args.conversation)
        await client.edit(cid, args.message_id, args.message)
    elif command == "delete":
        cid = await _conversation(client, args.conversation)
        await client.delete(cid, args.message_id)
    elif command == "react":
        cid = await _conversation(client, args.conversation)
        await client.react(cid, args.message_id, args.emoji, remove=args.remove)
    else:  # pragma: no cover - argparse allows only the commands above
        raise UsageError(f"unknown command {command}")


async def _listen(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> int:
    events = client.events()
    await client.start()
    seen = 0

    async def follow() -> None:
        nonlocal seen
        async for event in events:
            if isinstance(event, MessageReceived | MessageUpdated):
                view = await client.message(event.message_id)
                if view.message.outgoing and isinstance(event, MessageReceived):
                    continue
                conversation = await client.conversation(event.conversation_id)
                print(f"[{conversation.name}] {format_message(view)}", file=out, flush=True)
                if (
                    isinstance(event, MessageReceived)
                    and view.message.kind is not MessageKind.SYSTEM
                ):
                    seen += 1
                    if args.count is not None and seen >= args.count:
                        return

    try:
        await asyncio.wait_for(follow(), args.timeout)
    except TimeoutError:
        pass
    finally:
        events.close()
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    stdin: IO[bytes] | None = None,
) -> int:
    """Run one command; the exit status.

    ``stdin`` is where a message text given as ``-`` is read (default:
    this process's standard input).
    """
    args = _parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        if args.command in _TEXT_COMMANDS:
            source = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
            args.message = message_text(args.text, source)
        return asyncio.run(_run(args, stream))
    except UsageError as exc:
        print(f"messenger-cli: {exc}", file=sys.stderr)
        return 2
    except ProfileNotFoundError:
        print(
            f"messenger-cli: there is no profile {args.profile!r}; create one with create-account",
            file=sys.stderr,
        )
        return 1
    except WrongPassphraseError as exc:
        print(f"messenger-cli: {exc.user_message}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"messenger-cli: {exc.user_message}", file=sys.stderr)
        return 1
    except TimeoutError:
        print("messenger-cli: timed out; queued messages will be sent next time", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
