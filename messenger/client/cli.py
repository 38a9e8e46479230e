"""``messenger-cli``: the messenger without a desktop, for scripts, tests and terminals.

::

    messenger-cli [--data-dir DIR] [--profile NAME] [--no-keyring]
                  [--allow-insecure-http] COMMAND ...

    create-account SERVER|LINK [--handle H] [--invite CODE]
                                         a new profile's anonymous account; an
                                         invite link may carry the server's invite
    whoami [--invite CODE]               the account, its address and invite link
    backup FILE  |  restore FILE         the whole profile in one encrypted file
    add-contact ADDRESS [--name N]       handle@server, a handle, or an invite link
    contacts | conversations
    create-group NAME [MEMBER ...]       a group with contacts in it
    add-member CONV MEMBER ...  |  remove-member CONV MEMBER
    rename CONV NAME  |  leave CONV
    set-timer CONV DURATION              disappearing messages: off, 90s, 5m, 1h, 1d, 1w
    upgrade-encryption CONV              move it to post-quantum encryption (all members)
    restart CONV [--without MEMBER ...]  start again a conversation that cannot go on
    send TARGET [TEXT ... | -]           TARGET: a conversation, or a contact (1:1)
    send-file TARGET PATH [--caption T]  send a file; waits until it is uploaded and sent
    download MESSAGE_ID [--output PATH]  download a received file and save it
    reply CONV MESSAGE_ID [TEXT ... | -]  |  edit CONV MESSAGE_ID [TEXT ... | -]
    delete CONV MESSAGE_ID  |  react CONV MESSAGE_ID EMOJI [--remove]
    history CONV [--limit N]             the newest messages
    listen [--count N] [--timeout S]     print messages as they arrive
    search QUERY ... [--limit N]         full-text search (newest 50 by default)
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
variable, else it is asked for on the terminal (never echoed); a backup's
from ``MESSENGER_BACKUP_PASSPHRASE``, else the terminal. With
``--no-keyring`` the OS keyring is never used, so the passphrase is always
needed. A plain ``http://`` server address is refused unless the server is
on this computer (loopback) or ``--allow-insecure-http`` is given with
``create-account`` (the profile remembers that choice for its server);
for a server whose certificate comes from a private authority, set
``MESSENGER_CA_FILE`` to that authority's PEM certificate. Errors are
printed as one sentence; the exit status is 1 for an error, 2 for bad
usage, 3 when the profile is open in another process.

One process at a time may open a profile (:class:`~.profiles.ProfileLock`):
two would each take a share of its messages from the server. Changes
(``send``, ``react``, ``add-member``...) are written to the outbox first;
when the server cannot be reached the command says so and returns at once,
and ``listen``, ``sync`` or the next command that syncs sends them.
``listen`` prints "offline, retrying" and "connected" on standard error as
the connection changes, and retries at most 2 s apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import getpass
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

import keyring.backends.fail

from .addresses import INVITE_SCHEME
from .attachments import commands as attachment_commands
from .attachments.media import format_size
from .backup import restore_backup
from .client import ClientOptions, MessengerClient
from .content import MAX_TEXT_BYTES
from .disappearing import format_timer, parse_timer
from .errors import (
    ClientError,
    ConversationNotFoundError,
    DeviceReplacedError,
    InvalidServerAddressError,
    MessageTooLongError,
    NetworkError,
    NotAMemberError,
    PassphraseRequiredError,
    ProfileNotFoundError,
    ServerUnavailableError,
    StoreBusyError,
)
from .events import ConnectionState, ConnectionStateChanged, MessageReceived, MessageUpdated
from .linking import commands as link_commands
from .models import ConversationView, MessageView
from .net.backoff import Backoff
from .net.http import normalize_server_url
from .profiles import ProfileLock, Profiles
from .store.keychain import Keychain
from .store.messages import MessageKind, MessageStatus
from .store.search import HIGHLIGHT_END, HIGHLIGHT_START

__all__ = [
    "BACKUP_PASSPHRASE_ENV",
    "EXIT_PROFILE_BUSY",
    "PASSPHRASE_ENV",
    "RESTORE_TAKEOVER",
    "main",
    "message_text",
    "parse_join_link",
]

PASSPHRASE_ENV: Final = "MESSENGER_PASSPHRASE"  # noqa: S105 (a variable name)
BACKUP_PASSPHRASE_ENV: Final = "MESSENGER_BACKUP_PASSPHRASE"  # noqa: S105 (a variable name)
#: The exit status when the profile is open in another process.
EXIT_PROFILE_BUSY: Final = 3
#: The CLI reconnects and resends at most this far apart (the app's cap is 30 s).
CLI_BACKOFF: Final = Backoff(base=0.25, maximum=2.0)
#: The query parameter of an invite link that carries the server's invite code.
INVITE_PARAM: Final = "invite"
_INVITE_CODE: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
_HOST: Final = re.compile(r"[A-Za-z0-9_.-]+|[0-9A-Fa-f:.]+")
_SEARCH_LIMIT: Final = 50
_QUEUED: Final = (
    "The server cannot be reached; this is queued and will be sent by "
    "'listen', 'sync' or the next command that reaches the server."
)
_UNREACHABLE: Final = "The server cannot be reached right now; try again later."
#: What ``restore`` says about what follows (messenger.client.restore_device).
RESTORE_TAKEOVER: Final = (
    "When this copy first connects, it joins the account as a new device and rejoins "
    "its conversations; the device the backup was made from keeps working."
)
_REPLACED: Final = DeviceReplacedError.default_user_message
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
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http:// to a server that is not this computer (unencrypted; "
        "for a trusted network only)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("create-account", help="create the profile's anonymous account")
    p.add_argument(
        "server",
        help="server URL, e.g. https://chat.example.org, or an invite link "
        "(messenger://add?...), which adds its sender as a contact too",
    )
    p.add_argument("--handle", help="a handle others can find you by")
    p.add_argument(
        "--invite",
        metavar="CODE",
        help="the server's invite code, if it needs one (--invite=CODE if it starts with -)",
    )
    p = sub.add_parser("whoami", help="show the account, its address and invite link")
    p.add_argument(
        "--invite", metavar="CODE", help="put this server invite code into the invite link"
    )
    p = sub.add_parser("backup", help="write the whole profile to an encrypted file")
    p.add_argument("file", type=Path)
    p = sub.add_parser(
        "restore",
        help="restore a backup into a new profile (--profile)",
        description="Restore a backup into the new profile named by --profile. The restored "
        "copy takes over the account's device: stop using the old copy.",
    )
    p.add_argument("file", type=Path)
    p = sub.add_parser("add-contact", help="add a contact by handle@server or invite link")
    p.add_argument("address")
    p.add_argument("--name", help="a display name for the contact")
    sub.add_parser("contacts", help="list contacts")
    link_commands.add_parsers(sub)
    attachment_commands.add_parsers(sub)
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
    p = sub.add_parser("set-timer", help="set the conversation's disappearing-message timer")
    p.add_argument("conversation")
    p.add_argument("duration", help="off, or a number with s, m, h, d or w (90s, 5m, 1h, 1w)")
    p = sub.add_parser(
        "upgrade-encryption",
        help="move a conversation to the post-quantum cipher suite (docs/pq-suites.md)",
    )
    p.add_argument("conversation")
    p = sub.add_parser(
        "restart", help="start again a conversation whose group cannot go on (history kept)"
    )
    p.add_argument("conversation")
    p.add_argument("--without", nargs="+", default=[], metavar="MEMBER", help="members left out")
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
    p.add_argument(
        "--limit",
        type=int,
        default=_SEARCH_LIMIT,
        help=f"at most this many (default {_SEARCH_LIMIT})",
    )
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
        text = " ".join(words)
        if not text.strip():
            raise UsageError("the message is empty")
        return text
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
    if not text.strip():
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


def _passphrase(*, confirm: bool, env: str = PASSPHRASE_ENV, what: str = "Passphrase") -> str:
    from_env = os.environ.get(env)
    if from_env:
        return from_env
    if not _can_prompt():
        raise UsageError(f"no {what.lower()}: set {env} or run in a terminal")
    first = getpass.getpass(f"{what}: ")
    if confirm and getpass.getpass(f"Repeat the {what.lower()}: ") != first:
        raise UsageError(f"the {what.lower()}s differ")
    return first


def _keychain(args: argparse.Namespace) -> Keychain | None:
    if args.no_keyring:
        return Keychain(backend=keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    return None


_OPTIONS: Final = ClientOptions(backoff=CLI_BACKOFF)
_INSECURE_OPTIONS: Final = ClientOptions(backoff=CLI_BACKOFF, allow_insecure_http=True)


def _options(args: argparse.Namespace) -> ClientOptions:
    return _INSECURE_OPTIONS if args.allow_insecure_http else _OPTIONS


async def _open(
    args: argparse.Namespace, lock: list[ProfileLock], *, create: bool = False
) -> MessengerClient:
    """Open (or create) the profile, holding its lock (appended to ``lock``) until closed."""
    keychain = _keychain(args)
    profiles = Profiles(args.data_dir)
    if create and not profiles.exists(args.profile):
        client = await MessengerClient.create(
            args.profile,
            _passphrase(confirm=True),
            data_dir=args.data_dir,
            keychain=keychain,
            options=_options(args),
        )
        try:
            lock.append(ProfileLock(client.profile))
            lock[-1].acquire()
        except BaseException:
            await client.close()
            raise
        return client
    profile = profiles.get(args.profile)
    lock.append(ProfileLock(profile))
    lock[-1].acquire()  # before the passphrase: a busy profile is said at once
    if not args.no_keyring:
        with contextlib.suppress(PassphraseRequiredError):
            return await MessengerClient.open(profile, keychain=keychain, options=_options(args))
    return await MessengerClient.open(
        profile, _passphrase(confirm=False), keychain=keychain, options=_options(args)
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
    if view.attachment is not None and not message.deleted:
        size = format_size(view.attachment.size)
        body = f"[file {view.attachment.name}, {size}] {body}".rstrip()
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
    seconds = view.conversation.disappearing_seconds
    timer = f" — disappearing: {format_timer(seconds)}" if seconds else ""
    members = ", ".join(m.name for m in view.members)
    return f"{view.id:>4}  {kind:<5} {view.name}{left}{unread}{timer}  [{members}]"


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


async def _best_effort_sync(client: MessengerClient, out: TextIO) -> bool:
    """Catch up with the server if it can be reached; whether it could."""
    try:
        await client.sync()
    except NetworkError:
        print("(offline: showing what this device has)", file=sys.stderr)
        return False
    except DeviceReplacedError as exc:
        print(f"{exc.user_message} (showing what this copy has)", file=sys.stderr)
        return False
    return True


async def _deliver(client: MessengerClient) -> None:
    """Send what a command queued: at once when the server is reachable.

    When it is not, say that the change is queued and return; ``listen``,
    ``sync`` or a later command sends it.
    """
    try:
        await client.sync()
    except NetworkError:
        print(_QUEUED, file=sys.stderr)
        return
    try:
        await client.flush(_FLUSH_TIMEOUT)
    except TimeoutError:
        print(_QUEUED, file=sys.stderr)


def parse_join_link(text: str) -> tuple[str, str | None, str | None]:
    """A server URL or invite link: (server URL, server invite code, contact address).

    An invite link (``messenger://add?server=...&account=...[&invite=CODE]``)
    names its server, may carry the server's invite code, and is itself the
    address of the contact who shared it.
    """
    value = text.strip()
    if not value.lower().startswith(f"{INVITE_SCHEME}://"):
        return value, None, None
    query = parse_qs(urlsplit(value).query)
    server = query.get("server", [""])[0]
    if not server:
        raise InvalidServerAddressError(
            f"no server in {value!r}", user_message="This invite link names no server."
        )
    code = query.get(INVITE_PARAM, [None])[0]
    return server, code, value


def _check_server_url(url: str) -> str:
    """InvalidServerAddressError unless ``url`` looks like a server (a host name, no spaces)."""
    host = urlsplit(normalize_server_url(url)).hostname or ""
    if not _HOST.fullmatch(host):
        raise InvalidServerAddressError(f"not a host name: {host!r}")
    return url


def _with_invite(link: str, code: str) -> str:
    return f"{link}&{urlencode({INVITE_PARAM: code})}"


def _check_invite_code(code: str) -> str:
    if not _INVITE_CODE.fullmatch(code):
        raise UsageError("an invite code is 8 to 64 letters, digits, '-' or '_'")
    return code


# -- commands -----------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    command = args.command
    if command == "demo":
        from .demo import run_demo

        return await run_demo(out, port=args.port)
    if command == "restore":
        return _restore(args, out)
    locks: list[ProfileLock] = []
    try:
        creates = command == "create-account" or link_commands.creates_profile(args)
        client = await _open(args, locks, create=creates)
        try:
            return await _command(client, args, out)
        finally:
            await client.close()
    finally:
        for lock in locks:
            lock.release()


def _restore(args: argparse.Namespace, out: TextIO) -> int:
    profiles = Profiles(args.data_dir)
    if profiles.exists(args.profile):
        raise UsageError(
            f"profile {args.profile!r} exists; restore into a new one with --profile NAME"
        )
    if not args.file.is_file():
        raise UsageError(f"there is no file {str(args.file)!r}")
    backup_passphrase = _passphrase(
        confirm=False, env=BACKUP_PASSPHRASE_ENV, what="Backup passphrase"
    )
    recovery = _passphrase(confirm=True)
    profile = restore_backup(
        args.file, backup_passphrase, profiles, args.profile, recovery, keychain=_keychain(args)
    )
    print(f"Restored into profile {profile.name!r}.", file=out)
    print(RESTORE_TAKEOVER, file=out)
    return 0


async def _command(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> int:
    command = args.command
    if command == "create-account":
        return await _create_account(client, args, out)
    if command in link_commands.COMMANDS:
        return await link_commands.run(client, args, out, args.answers)
    if command == "whoami":
        account = await client.account()
        if account is None:
            print("No account yet: use create-account.", file=out)
            return 1
        link = account.invite_link
        if args.invite:
            link = _with_invite(link, _check_invite_code(args.invite))
        print(f"Account {account.account_id} on {account.server_url}", file=out)
        print(f"Address: {account.address or '(no handle)'}", file=out)
        print(f"Invite link: {link}", file=out)
        return 0
    if command == "backup":
        passphrase = _passphrase(confirm=True, env=BACKUP_PASSPHRASE_ENV, what="Backup passphrase")
        info = await client.backup(args.file, passphrase)
        print(f"Backed up profile {info.profile_name!r} to {args.file}.", file=out)
        return 0
    if command == "add-contact":
        contact = await client.add_contact(args.address, display_name=args.name, check=True)
        print(f"Added {contact.display_name or contact.handle or contact.account_id}", file=out)
        return 0
    if command == "contacts":
        for contact in await client.contacts():
            verified = " (verified)" if contact.verified else ""
            name = contact.display_name or contact.handle or "-"
            print(f"{contact.account_id}  {name}{verified}", file=out)
        return 0
    if command in attachment_commands.COMMANDS:  # docs/attachments.md §4
        target = await _target(client, args.target) if command == "send-file" else None
        return await attachment_commands.run(client, args, out, target)
    if command == "sync":
        await client.sync()  # offline: ServerUnavailableError, one sentence, status 1
        await client.flush(_FLUSH_TIMEOUT)
        return 0
    if command in ("conversations", "history", "search"):
        await _best_effort_sync(client, out)
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
        return await _search(client, args, out)
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
    await _deliver(client)
    return 0


async def _create_account(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> int:
    server, code, contact = parse_join_link(args.server)
    if args.invite:
        code = args.invite
    info = await client.create_account(
        _check_server_url(server),
        args.handle,
        invite_code=_check_invite_code(code) if code else None,
        allow_insecure_http=args.allow_insecure_http,
    )
    # The devices group was queued with the account: register it now, so that a
    # device linked or restored later finds it on the server (docs/devices.md §3).
    with contextlib.suppress(NetworkError, TimeoutError):
        await client.flush(_FLUSH_TIMEOUT)
    print(f"Account {info.account_id} on {info.server_url}", file=out)
    if info.address:
        print(f"Address: {info.address}", file=out)
    print(f"Invite link: {info.invite_link}", file=out)
    if contact is not None:
        added = await client.add_contact(contact, check=True)
        print(f"Added {added.display_name or added.handle or added.account_id}", file=out)
    return 0


async def _search(client: MessengerClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    query = " ".join(args.query)
    hits = await client.search(query, limit=args.limit + 1)
    for hit in hits[: args.limit]:
        snippet = hit.snippet.replace(HIGHLIGHT_START, "[").replace(HIGHLIGHT_END, "]")
        print(f"#{hit.message.id} in {hit.message.conversation_id}: {snippet}", file=out)
    if len(hits) > args.limit:
        total = len(await client.search(query, limit=1_000_000))
        print(f"(showing {args.limit} of {total}; use --limit to see more)", file=sys.stderr)
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
        contact = await client.find_contact(args.member)
        if contact.account_id not in {m.account_id for m in await client.members(cid)}:
            name = contact.display_name or contact.handle or contact.account_id
            raise NotAMemberError(
                f"{contact.account_id} is not in conversation {cid}",
                user_message=f"{name} is not a member of this group.",
            )
        await client.remove_member(cid, contact.account_id)
    elif command == "rename":
        await client.rename(await _conversation(client, args.conversation), args.name)
    elif command == "set-timer":
        try:
            seconds = parse_timer(args.duration)
        except ValueError:
            raise UsageError(
                "a duration is “off” or a number with s, m, h, d or w, like 90s, 5m or 1h"
            ) from None
        await client.set_disappearing_timer(await _conversation(client, args.conversation), seconds)
    elif command == "upgrade-encryption":
        cid = await _conversation(client, args.conversation)
        await client.sync()  # the group's latest epoch first: the ReInit commits to it
        await client.upgrade_encryption(cid)
        print(f"Conversation {cid} now uses {await client.cipher_suite(cid)}", file=out)
    elif command == "restart":
        cid = await _conversation(client, args.conversation)
        await client.sync()  # the group's latest epoch first: a branch starts from it
        without = [(await client.find_contact(x)).account_id for x in args.without]
        await client.restart_conversation(cid, leave_out=without)
        print(f"Conversation {cid} started again", file=out)
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

    shown: ConnectionState | None = None
    replaced = False

    async def follow() -> None:
        nonlocal seen, shown, replaced
        async for event in events:
            if isinstance(event, ConnectionStateChanged):
                # One line per change: "connecting" between retries is not one.
                if event.state in (ConnectionState.REPLACED, ConnectionState.REMOVED):
                    # Another copy (a restored backup) took the account over: stop.
                    print(event.error or _REPLACED, file=sys.stderr, flush=True)
                    replaced = True
                    return
                if event.state is not ConnectionState.CONNECTING and event.state is not shown:
                    shown = event.state
                    line = "connected" if shown is ConnectionState.ONLINE else "offline, retrying"
                    print(line, file=sys.stderr, flush=True)
            elif isinstance(event, MessageReceived | MessageUpdated):
                try:
                    view = await client.message(event.message_id)
                    conversation = await client.conversation(event.conversation_id)
                except ConversationNotFoundError:
                    continue  # not a conversation (the devices group) or gone meanwhile
                if view.message.outgoing and isinstance(event, MessageReceived):
                    continue
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
    return 1 if replaced else 0


#: An account or client ID as servers write them: 22 base64url characters.
_DASH_ID: Final = re.compile(r"-[A-Za-z0-9_-]{21}")


def _ids_as_positionals(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--`` before an ID that starts with ``-``, when no option follows it.

    Servers before this one gave such IDs to one account or device in 64;
    argparse would take ``unlink -Xy…`` for an unknown option.
    """
    args = list(argv)
    for i, word in enumerate(args):
        if word == "--":
            break
        if _DASH_ID.fullmatch(word):
            rest = args[i:]
            if all(not t.startswith("-") or _DASH_ID.fullmatch(t) for t in rest):
                return [*args[:i], "--", *rest]
            break
    return args


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
    args = _parser().parse_args(_ids_as_positionals(sys.argv[1:] if argv is None else argv))
    args.answers = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    stream = out if out is not None else sys.stdout
    try:
        if args.command in _TEXT_COMMANDS:
            source = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
            args.message = message_text(args.text, source)
        status = asyncio.run(_run(args, stream))
        stream.flush()  # here, so that a reader that went away is caught below
        return status
    except UsageError as exc:
        _error(str(exc))
        return 2
    except ProfileNotFoundError:
        _error(f"there is no profile {args.profile!r}; create one with create-account")
        return 1
    except StoreBusyError as exc:
        _error(exc.user_message)
        return EXIT_PROFILE_BUSY
    except ServerUnavailableError:
        # Its usual sentence promises a later send, which is only true of a queued change.
        _error(_UNREACHABLE)
        return 1
    except ClientError as exc:
        _error(exc.user_message)
        return 1
    except TimeoutError:
        _error("timed out")
        return 1
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python's
        # final flush of standard output from failing again.
        if out is None:
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        _error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
        return 1
    except KeyboardInterrupt:
        return 130


def _error(sentence: str) -> None:
    with contextlib.suppress(OSError):
        print(f"messenger-cli: {sentence}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
