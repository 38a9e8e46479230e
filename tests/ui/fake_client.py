"""An in-memory stand-in for :class:`messenger.client.MessengerClient`.

The UI tests drive edge states with it (errors, empty states, very long or
right-to-left messages, bursts of arrivals) without a server or a store. It
has the facade's async methods with the same names and keyword arguments,
keeps conversations, messages, contacts and reactions in dicts, and
publishes the same events (carrying their views, as the real client does)
on a real :class:`~messenger.client.events.EventBus`.

Switches for tests:

* ``fail(method, error, times=None)`` -- the next ``times`` calls (all when
  None) of ``method`` raise ``error`` (a ``ClientError``);
* ``calls[method]`` -- how often each method was awaited;
* ``delay`` -- seconds every call sleeps first (to see progress states);
* ``receive(...)``, ``receive_many(...)``, ``set_connection(...)``,
  ``set_typing(...)`` -- what the network would do;
* attachments (docs/attachments.md): ``add_file_now``, ``receive_file``,
  ``set_transfer`` (a state change), ``report_progress`` (``TransferProgress``),
  ``max_file_bytes`` (``send_file`` refuses larger), ``sent_files``,
  ``opened``; disappearing messages: ``expire`` (``MessagesExpired``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import secrets
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from messenger.client import (
    AccountInfo,
    AccountUpdated,
    AttachmentNotDownloadedError,
    AttachmentTooLargeError,
    AttachmentView,
    ClientError,
    ConnectionState,
    ConnectionStateChanged,
    Contact,
    ContactNotFoundError,
    ContactUpdated,
    Conversation,
    ConversationKind,
    ConversationNotFoundError,
    ConversationUpdated,
    ConversationView,
    DevicesChanged,
    DeviceView,
    InvalidTimerError,
    LinkCancelledError,
    LinkCode,
    LinkExpiredError,
    LinkOffer,
    LinkProgress,
    LinkStage,
    MemberView,
    Message,
    MessageKind,
    MessageNotFoundError,
    MessageReceived,
    MessagesExpired,
    MessageStatus,
    MessageStatusChanged,
    MessageUpdated,
    MessageView,
    NoAccountError,
    NotAllowedError,
    Note,
    NoteKind,
    NoteView,
    Preferences,
    PreferencesChanged,
    Profile,
    ReactionSummary,
    SafetyNumber,
    SafetyNumberView,
    SearchHit,
    Subscription,
    TransferProgress,
    TransferState,
    TypingChanged,
    WrongPassphraseError,
    note_text,
    parse_link_code,
)
from messenger.client.events import EventBus

ME = "me0000000000000000000000000000000000000000000000000000000000000"
NOW_MS = 1_764_770_000_000  # a fixed "now" (Dec 2025) so screenshots are stable


class FakeClient:
    """A fake ``MessengerClient``: same coroutine names, in-memory state."""

    def __init__(
        self,
        *,
        display_name: str = "Me",
        account_id: str = ME,
        has_account: bool = True,
        passphrase: str = "correct horse battery staple",
        profile: Profile | None = None,
        clock_ms: int = NOW_MS,
    ) -> None:
        self.me = account_id
        self.display_name: str | None = display_name
        self.passphrase = passphrase
        self._has_account = has_account
        self._profile = profile or Profile(
            name="test", id="0" * 32, path=Path("/nonexistent/test"), created_at=clock_ms
        )
        self.now_ms = clock_ms
        self.bus = EventBus()
        self.contacts_: dict[str, Contact] = {}
        self.conversations_: dict[int, Conversation] = {}
        self.members_: dict[int, list[str]] = {}
        self.messages_: dict[int, Message] = {}
        self.by_conversation: dict[int, list[int]] = collections.defaultdict(list)
        self.reactions_: dict[int, dict[str, set[str]]] = collections.defaultdict(dict)
        self.read_upto: dict[int, int] = {}
        self.prefs = Preferences()
        self.calls: collections.Counter[str] = collections.Counter()
        self.failures: dict[str, tuple[ClientError, int | None]] = {}
        self.delay = 0.0
        #: What create_account and backup report to a ``progress`` callback, and
        #: an event they then wait for (a test looks at the bar in between).
        self.progress_steps: tuple[float, ...] = (0.25, 0.5, 0.75)
        self.progress_gate: asyncio.Event | None = None
        self.started = False
        self.closed = False
        self.typing_sent: list[tuple[int, bool]] = []
        self.server_url = "https://chat.example.org"
        self.key_in_keyring = True
        self._ids = itertools.count(1)
        self._cids = itertools.count(1)
        self.devices_: list[DeviceView] = []
        self.links: list[FakeDeviceLink] = []
        self.linked_with: tuple[LinkCode, str] | None = None
        self.attachments_: dict[int, AttachmentView] = {}
        #: The plaintext of each attachment (what ``attachment_bytes`` returns when readable).
        self.files_: dict[int, bytes] = {}
        #: ``send_file`` refuses files larger than this (AttachmentTooLargeError).
        self.max_file_bytes = 100_000_000
        #: ``(conversation_id, name, source, caption)`` of each ``send_file``.
        self.sent_files: list[tuple[int, str, Path | bytes, str | None]] = []
        #: Paths handed out by ``open_attachment``; destinations of ``save_attachment``.
        self.opened: list[Path] = []
        self.saved: list[tuple[int, Path]] = []
        self.timers_set: list[tuple[int, int]] = []
        #: Conversations whose group cannot go on (``ConversationView.stuck``).
        self.stuck_: set[int] = set()
        #: ``(conversation_id, leave_out)`` of each ``restart_conversation``.
        self.restarted: list[tuple[int, tuple[str, ...]]] = []

    # -- switches -------------------------------------------------------------------------

    def fail(self, method: str, error: ClientError, times: int | None = None) -> None:
        """Make ``method`` raise ``error`` (the next ``times`` calls; all when None)."""
        self.failures[method] = (error, times)

    async def _call(self, name: str) -> None:
        self.calls[name] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.closed and name not in ("close",):
            from messenger.client import ClientClosedError

            raise ClientClosedError("the client is closed")
        failure = self.failures.get(name)
        if failure is not None:
            error, times = failure
            if times is not None:
                if times <= 1:
                    del self.failures[name]
                else:
                    self.failures[name] = (error, times - 1)
            raise error

    def _tick(self) -> int:
        self.now_ms += 1000
        return self.now_ms

    # -- building state (no events, no calls counted) -----------------------------------

    def add_contact_now(
        self, account_id: str, name: str, *, handle: str | None = None, verified: bool = False
    ) -> Contact:
        contact = Contact(
            account_id=account_id,
            handle=handle,
            display_name=name,
            verified_fingerprint=b"\x01" * 32 if verified else None,
            verified_at=self.now_ms if verified else None,
            blocked=False,
            added_at=self.now_ms,
            updated_at=self.now_ms,
        )
        self.contacts_[account_id] = contact
        return contact

    def add_conversation_now(
        self,
        title: str | None,
        members: Sequence[str] = (),
        *,
        peer: str | None = None,
        muted: bool = False,
        archived: bool = False,
        at: int | None = None,
    ) -> Conversation:
        cid = next(self._cids)
        conversation = Conversation(
            id=cid,
            group_id=secrets.token_bytes(16),
            kind=ConversationKind.DIRECT if peer else ConversationKind.GROUP,
            title=title,
            peer_account_id=peer,
            created_at=at or self.now_ms,
            last_activity_at=at or self.now_ms,
            muted=muted,
            archived=archived,
            left_at=None,
        )
        self.conversations_[cid] = conversation
        self.members_[cid] = [self.me, *([peer] if peer else members)]
        return conversation

    def add_message_now(
        self,
        conversation_id: int,
        sender: str,
        body: str | None,
        *,
        at: int | None = None,
        status: MessageStatus | None = None,
        reply_to: int | None = None,
        kind: MessageKind | None = None,
        note: Note | None = None,
        edited: bool = False,
        deleted: bool = False,
        expires_after: int = 0,
        expires_at: int | None = None,
    ) -> Message:
        mid = next(self._ids)
        when = at if at is not None else self._tick()
        outgoing = sender == self.me
        reply_uid = self.messages_[reply_to].uid if reply_to is not None else None
        if kind is None:
            kind = (
                MessageKind.SYSTEM
                if note is not None
                else (MessageKind.REPLY if reply_to is not None else MessageKind.TEXT)
            )
        message = Message(
            id=mid,
            conversation_id=conversation_id,
            uid=mid.to_bytes(16, "big"),
            sender_account_id=sender,
            sender_client_id=sender + "-c",
            outgoing=outgoing,
            kind=kind,
            body=None if deleted else body,
            reply_to_uid=reply_uid,
            status=status or (MessageStatus.READ if outgoing else MessageStatus.RECEIVED),
            sent_at=when,
            received_at=when,
            edited_at=when + 1 if edited else None,
            deleted_at=when + 1 if deleted else None,
            server_seq=mid,
            epoch=1,
            note=note,
            expires_after=expires_after,
            expires_at=expires_at,
        )
        self.messages_[mid] = message
        self.by_conversation[conversation_id].append(mid)
        conversation = self.conversations_[conversation_id]
        self.conversations_[conversation_id] = dataclasses.replace(
            conversation, last_activity_at=max(conversation.last_activity_at, when)
        )
        return message

    def add_file_now(
        self,
        conversation_id: int,
        sender: str,
        name: str,
        data: bytes,
        *,
        media_type: str = "application/octet-stream",
        state: TransferState | None = None,
        caption: str | None = None,
        size: int | None = None,
        done: int = 0,
        width: int = 0,
        height: int = 0,
        thumbnail: bytes = b"",
        error: str | None = None,
        at: int | None = None,
        status: MessageStatus | None = None,
    ) -> Message:
        """A file message (stored, not published); ``data`` is its plaintext."""
        message = self.add_message_now(
            conversation_id, sender, caption, at=at, status=status, kind=MessageKind.FILE
        )
        if state is None:
            state = TransferState.SENT if message.outgoing else TransferState.AVAILABLE
        self.attachments_[message.id] = AttachmentView(
            name=name,
            media_type=media_type,
            size=len(data) if size is None else size,
            state=state,
            done=done,
            width=width,
            height=height,
            thumbnail=thumbnail,
            error=error,
        )
        self.files_[message.id] = data
        return message

    def receive_file(
        self, conversation_id: int, sender: str, name: str, data: bytes, **kw: Any
    ) -> Message:
        """A file message arrives (published)."""
        message = self.add_file_now(conversation_id, sender, name, data, **kw)
        self._publish_received(message)
        return message

    def set_transfer(
        self, message_id: int, state: TransferState, *, done: int = 0, error: str | None = None
    ) -> None:
        """An attachment's transfer changed state (a ``MessageUpdated``)."""
        self.attachments_[message_id] = dataclasses.replace(
            self.attachments_[message_id], state=state, done=done, error=error
        )
        self._message_changed(message_id)

    def report_progress(self, message_id: int, done: int) -> None:
        """A ``TransferProgress`` event (the stored view keeps the bytes too)."""
        attachment = self.attachments_[message_id]
        self.attachments_[message_id] = dataclasses.replace(attachment, done=done)
        m = self.messages_[message_id]
        upload = attachment.state is TransferState.UPLOADING
        self.bus.publish(
            TransferProgress(m.conversation_id, message_id, done, attachment.size, upload)
        )

    def expire(self, conversation_id: int, message_ids: Sequence[int]) -> None:
        """Disappearing messages reached their deadline: deleted and published."""
        for mid in message_ids:
            self.messages_.pop(mid, None)
            self.attachments_.pop(mid, None)
            self.files_.pop(mid, None)
            if mid in self.by_conversation[conversation_id]:
                self.by_conversation[conversation_id].remove(mid)
        self.bus.publish(MessagesExpired(conversation_id, tuple(message_ids)))

    def add_reaction_now(self, message_id: int, account_id: str, emoji: str) -> None:
        self.reactions_[message_id].setdefault(emoji, set()).add(account_id)

    # -- views ----------------------------------------------------------------------------

    def _name(self, account_id: str) -> str:
        if account_id == self.me:
            return "You"
        contact = self.contacts_.get(account_id)
        if contact is not None:
            return contact.display_name or contact.handle or account_id[:8]
        return account_id[:8]

    def _member(self, account_id: str) -> MemberView:
        return MemberView(account_id, self._name(account_id), account_id == self.me)

    def _unread(self, cid: int) -> int:
        upto = self.read_upto.get(cid, 0)
        return sum(
            1
            for mid in self.by_conversation[cid]
            if mid > upto
            and not self.messages_[mid].outgoing
            and self.messages_[mid].kind is not MessageKind.SYSTEM
        )

    def conversation_view(self, cid: int) -> ConversationView:
        c = self.conversations_[cid]
        name = (
            self._name(c.peer_account_id)
            if c.kind is ConversationKind.DIRECT and c.peer_account_id
            else c.title or "Unnamed group"
        )
        blocked = bool(
            c.peer_account_id
            and c.peer_account_id in self.contacts_
            and self.contacts_[c.peer_account_id].blocked
        )
        return ConversationView(
            conversation=c,
            name=name,
            members=tuple(self._member(a) for a in self.members_[cid]),
            unread=self._unread(cid),
            muted=c.muted,
            blocked=blocked,
            read_receipts=self.prefs.read_receipts,
            typing_indicators=self.prefs.typing_indicators,
            stuck=cid in self.stuck_ and c.left_at is None,
        )

    def message_view(self, mid: int) -> MessageView:
        m = self.messages_[mid]
        note_view = None
        if m.kind is MessageKind.SYSTEM:
            note = m.note or Note(NoteKind.LEGACY_TEXT, text=m.body)
            note_view = NoteView(
                note.kind,
                actor=None if note.actor is None else self._member(note.actor),
                members=tuple(self._member(a) for a in note.accounts),
                name=note.name,
                text=note.text,
                seconds=note.seconds,
            )
            m = dataclasses.replace(m, body=note_text(note_view))
        reply = None
        if m.reply_to_uid is not None:
            reply = next((x for x in self.messages_.values() if x.uid == m.reply_to_uid), None)
        reactions = tuple(
            ReactionSummary(emoji, len(who), self.me in who)
            for emoji, who in self.reactions_.get(mid, {}).items()
            if who
        )
        return MessageView(
            message=m,
            sender_name=self._name(m.sender_account_id),
            reactions=reactions,
            reply_to=reply,
            note=note_view,
            attachment=self.attachments_.get(mid),
        )

    # -- the network, simulated -----------------------------------------------------------

    def receive(
        self, conversation_id: int, sender: str, body: str, *, reply_to: int | None = None
    ) -> Message:
        """A message arrives from ``sender``: stored and published."""
        message = self.add_message_now(conversation_id, sender, body, reply_to=reply_to)
        self._publish_received(message)
        return message

    def receive_many(self, conversation_id: int, sender: str, bodies: Iterable[str]) -> None:
        """A burst: every message is published before the UI gets a turn."""
        for body in bodies:
            self._publish_received(self.add_message_now(conversation_id, sender, body))

    def _publish_received(self, message: Message) -> None:
        self.bus.publish(
            MessageReceived(
                message.conversation_id,
                message.id,
                view=self.message_view(message.id),
                conversation=self.conversation_view(message.conversation_id),
            )
        )

    def set_status(self, message_id: int, status: MessageStatus) -> None:
        m = self.messages_[message_id]
        self.messages_[message_id] = dataclasses.replace(m, status=status)
        self.bus.publish(
            MessageStatusChanged(
                m.conversation_id, message_id, status, view=self.message_view(message_id)
            )
        )

    def set_connection(self, state: ConnectionState, error: str | None = None) -> None:
        self.bus.publish(ConnectionStateChanged(state, error))

    def set_typing(self, conversation_id: int, account_id: str, active: bool) -> None:
        self.bus.publish(TypingChanged(conversation_id, account_id, active))

    def mark_stuck_now(self, cid: int) -> None:
        """The conversation's group cannot go on, as the client finds out: its note."""
        self.stuck_.add(cid)
        self._publish_received(self.add_message_now(cid, self.me, None, note=Note(NoteKind.STUCK)))
        self._conversation_changed(cid)

    def _conversation_changed(self, cid: int) -> None:
        self.bus.publish(ConversationUpdated(cid, view=self.conversation_view(cid)))

    def _message_changed(self, mid: int) -> None:
        m = self.messages_[mid]
        self.bus.publish(MessageUpdated(m.conversation_id, mid, view=self.message_view(mid)))

    # -- the facade: lifecycle --------------------------------------------------------------

    @property
    def profile(self) -> Profile:
        return self._profile

    @property
    def has_account(self) -> bool:
        return self._has_account

    async def start(self) -> None:
        await self._call("start")
        if not self._has_account:
            raise NoAccountError("no account")  # as MessengerClient.start()
        self.started = True

    async def close(self) -> None:
        self.calls["close"] += 1
        if not self.closed:
            self.closed = True
            self.bus.close()

    def events(self) -> Subscription:
        return self.bus.subscribe()

    async def wait_online(self, timeout: float | None = None) -> None:
        await self._call("wait_online")

    async def sync(self) -> None:
        await self._call("sync")

    async def flush(self, timeout: float | None = None) -> None:
        await self._call("flush")

    async def remember_key(self) -> bool:
        await self._call("remember_key")
        self.key_in_keyring = True
        return True

    async def check_passphrase(self, passphrase: str) -> bool:
        await self._call("check_passphrase")
        return passphrase == self.passphrase

    async def change_passphrase(self, old: str, new: str) -> None:
        await self._call("change_passphrase")
        if old != self.passphrase:
            raise WrongPassphraseError("wrong passphrase")
        self.passphrase = new

    async def _report_progress(self, progress: Callable[[float], None] | None) -> None:
        """Report :attr:`progress_steps`, then wait at :attr:`progress_gate` if set."""
        if progress is None:
            return
        for fraction in self.progress_steps:
            progress(fraction)
            await asyncio.sleep(0)
        if self.progress_gate is not None:
            await self.progress_gate.wait()

    async def backup(
        self,
        destination: Path,
        passphrase: str,
        *,
        progress: Callable[[float], None] | None = None,
        **_: Any,
    ) -> Any:
        await self._call("backup")
        await self._report_progress(progress)
        if progress is not None:
            progress(1.0)
        from messenger.client import BackupInfo

        destination.write_bytes(b"fake backup")
        return BackupInfo(self._profile.name, 1, self.now_ms, 11)

    # -- account and contacts ------------------------------------------------------------

    async def create_account(
        self,
        server_url: str,
        handle: str | None = None,
        *,
        invite_code: str | None = None,
        progress: Callable[[float], None] | None = None,
        allow_insecure_http: bool = False,
    ) -> AccountInfo:
        await self._call("create_account")
        await self._report_progress(progress)
        if progress is not None:
            progress(1.0)
        self.server_url = server_url
        self._has_account = True
        self.handle = handle
        info = await self.account()
        assert info is not None
        return info

    async def account(self) -> AccountInfo | None:
        await self._call("account")
        if not self._has_account:
            return None
        handle = getattr(self, "handle", "me")
        host = self.server_url.split("//", 1)[-1]
        return AccountInfo(
            server_url=self.server_url,
            account_id=self.me,
            client_id=self.me + "-c",
            handle=handle,
            address=f"{handle}@{host}" if handle else None,
            invite_link=f"{self.server_url}/invite#{self.me[:16]}",
            display_name=self.display_name,
        )

    async def set_display_name(self, name: str | None) -> None:
        await self._call("set_display_name")
        self.display_name = name
        self.bus.publish(AccountUpdated(name))

    async def own_display_name(self) -> str | None:
        await self._call("own_display_name")
        return self.display_name

    async def add_contact(self, address: str, *, check: bool = True) -> Contact:
        await self._call("add_contact")
        if address.startswith("messenger://"):  # an invite link names the account
            from urllib.parse import parse_qs, urlsplit

            query = parse_qs(urlsplit(address).query)
            account_id = query["account"][0]
            name = query.get("handle", [account_id])[0]
            contact = self.add_contact_now(account_id, name, handle=query.get("handle", [None])[0])
        else:
            account_id = "acct-" + address.split("@", 1)[0]
            contact = self.add_contact_now(account_id, address.split("@", 1)[0], handle=address)
        self.bus.publish(ContactUpdated(account_id))
        return contact

    async def contacts(self, *, include_blocked: bool = False) -> list[Contact]:
        await self._call("contacts")
        return [c for c in self.contacts_.values() if include_blocked or not c.blocked]

    async def contact(self, account_id: str) -> Contact:
        await self._call("contact")
        try:
            return self.contacts_[account_id]
        except KeyError:
            raise ContactNotFoundError(f"no contact {account_id}") from None

    async def rename_contact(self, account_id: str, name: str | None) -> Contact:
        await self._call("rename_contact")
        contact = dataclasses.replace(self.contacts_[account_id], display_name=name)
        self.contacts_[account_id] = contact
        self.bus.publish(ContactUpdated(account_id))
        return contact

    async def block(self, account_id: str) -> Contact:
        await self._call("block")
        return self._set_blocked(account_id, True)

    async def unblock(self, account_id: str) -> Contact:
        await self._call("unblock")
        return self._set_blocked(account_id, False)

    def _set_blocked(self, account_id: str, blocked: bool) -> Contact:
        contact = dataclasses.replace(self.contacts_[account_id], blocked=blocked)
        self.contacts_[account_id] = contact
        self.bus.publish(ContactUpdated(account_id))
        return contact

    async def safety_number(self, account_id: str) -> SafetyNumberView:
        await self._call("safety_number")
        contact = self.contacts_[account_id]
        digits = "".join(str(b % 10) for b in (account_id * 10).encode()[:60])
        return SafetyNumberView(account_id, SafetyNumber(digits), contact.verified, False)

    async def mark_verified(self, account_id: str) -> SafetyNumberView:
        await self._call("mark_verified")
        contact = dataclasses.replace(
            self.contacts_[account_id], verified_fingerprint=b"\x01" * 32, verified_at=1
        )
        self.contacts_[account_id] = contact
        self.bus.publish(ContactUpdated(account_id))
        return await self.safety_number(account_id)

    # -- conversations ------------------------------------------------------------------

    def _get(self, cid: int) -> Conversation:
        try:
            return self.conversations_[cid]
        except KeyError:
            raise ConversationNotFoundError(f"no conversation {cid}") from None

    async def create_conversation(self, account_id: str) -> Conversation:
        await self._call("create_conversation")
        for c in self.conversations_.values():
            if c.peer_account_id == account_id:
                return c
        c = self.add_conversation_now(None, peer=account_id, at=self._tick())
        self._conversation_changed(c.id)
        return c

    async def create_group(self, name: str, members: Sequence[str] = ()) -> Conversation:
        await self._call("create_group")
        c = self.add_conversation_now(name, list(members), at=self._tick())
        m = self.add_message_now(c.id, self.me, None, note=Note(NoteKind.CREATED, name=name))
        self._publish_received(m)
        return c

    async def add_members(self, conversation_id: int, account_ids: Sequence[str]) -> None:
        await self._call("add_members")
        self._get(conversation_id)
        self.members_[conversation_id].extend(account_ids)
        note = Note(NoteKind.ADDED, actor=self.me, accounts=tuple(account_ids))
        self._publish_received(self.add_message_now(conversation_id, self.me, None, note=note))
        self._conversation_changed(conversation_id)

    async def remove_member(self, conversation_id: int, account_id: str) -> None:
        await self._call("remove_member")
        self.members_[conversation_id].remove(account_id)
        note = Note(NoteKind.REMOVED, actor=self.me, accounts=(account_id,))
        self._publish_received(self.add_message_now(conversation_id, self.me, None, note=note))
        self._conversation_changed(conversation_id)

    async def rename(self, conversation_id: int, name: str) -> None:
        await self._call("rename")
        c = self._get(conversation_id)
        self.conversations_[conversation_id] = dataclasses.replace(c, title=name)
        note = Note(NoteKind.RENAMED, actor=self.me, name=name)
        self._publish_received(self.add_message_now(conversation_id, self.me, None, note=note))
        self._conversation_changed(conversation_id)

    async def leave(self, conversation_id: int) -> None:
        await self._call("leave")
        c = self._get(conversation_id)
        self.conversations_[conversation_id] = dataclasses.replace(c, left_at=self.now_ms)
        self._conversation_changed(conversation_id)

    async def cipher_suite(self, conversation_id: int) -> str | None:
        await self._call("cipher_suite")
        return "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"

    async def members(self, conversation_id: int) -> list[MemberView]:
        await self._call("members")
        self._get(conversation_id)
        return [self._member(a) for a in self.members_[conversation_id]]

    async def conversations(self, *, archived: bool = False) -> list[ConversationView]:
        await self._call("conversations")
        views = [
            self.conversation_view(cid)
            for cid, c in self.conversations_.items()
            if c.archived == archived
        ]
        views.sort(key=lambda v: v.conversation.last_activity_at, reverse=True)
        return views

    async def conversation(self, conversation_id: int) -> ConversationView:
        await self._call("conversation")
        self._get(conversation_id)
        return self.conversation_view(conversation_id)

    async def _set_flag(self, conversation_id: int, **changes: Any) -> ConversationView:
        c = self._get(conversation_id)
        self.conversations_[conversation_id] = dataclasses.replace(c, **changes)
        self._conversation_changed(conversation_id)
        return self.conversation_view(conversation_id)

    async def mute(self, conversation_id: int, until: int | None = None) -> ConversationView:
        await self._call("mute")
        return await self._set_flag(conversation_id, muted=True, muted_until=until)

    async def unmute(self, conversation_id: int) -> ConversationView:
        await self._call("unmute")
        return await self._set_flag(conversation_id, muted=False, muted_until=None)

    async def archive(self, conversation_id: int) -> ConversationView:
        await self._call("archive")
        return await self._set_flag(conversation_id, archived=True)

    async def unarchive(self, conversation_id: int) -> ConversationView:
        await self._call("unarchive")
        return await self._set_flag(conversation_id, archived=False)

    async def set_draft(self, conversation_id: int, text: str | None) -> None:
        await self._call("set_draft")
        c = self._get(conversation_id)
        self.conversations_[conversation_id] = dataclasses.replace(c, draft=text or None)

    async def draft(self, conversation_id: int) -> str | None:
        await self._call("draft")
        return self._get(conversation_id).draft

    async def unread_count(self, conversation_id: int | None = None) -> int:
        await self._call("unread_count")
        if conversation_id is not None:
            return self._unread(conversation_id)
        return sum(
            self._unread(cid)
            for cid, c in self.conversations_.items()
            if not c.muted and not c.archived
        )

    async def preferences(self) -> Preferences:
        await self._call("preferences")
        return self.prefs

    async def set_read_receipts(self, enabled: bool) -> Preferences:
        await self._call("set_read_receipts")
        self.prefs = dataclasses.replace(self.prefs, read_receipts=enabled)
        self.bus.publish(PreferencesChanged(self.prefs.read_receipts, self.prefs.typing_indicators))
        return self.prefs

    async def set_auto_download_bytes(self, n: int) -> Preferences:
        await self._call("set_auto_download_bytes")
        self.prefs = dataclasses.replace(self.prefs, auto_download_bytes=n)
        self.bus.publish(PreferencesChanged(self.prefs.read_receipts, self.prefs.typing_indicators))
        return self.prefs

    async def set_typing_indicators(self, enabled: bool) -> Preferences:
        await self._call("set_typing_indicators")
        self.prefs = dataclasses.replace(self.prefs, typing_indicators=enabled)
        self.bus.publish(PreferencesChanged(self.prefs.read_receipts, self.prefs.typing_indicators))
        return self.prefs

    async def set_conversation_read_receipts(
        self, conversation_id: int, enabled: bool | None
    ) -> ConversationView:
        await self._call("set_conversation_read_receipts")
        return await self._set_flag(conversation_id, read_receipts=enabled)

    async def set_conversation_typing_indicators(
        self, conversation_id: int, enabled: bool | None
    ) -> ConversationView:
        await self._call("set_conversation_typing_indicators")
        return await self._set_flag(conversation_id, typing_indicators=enabled)

    # -- messages -----------------------------------------------------------------------

    async def send_text(self, conversation_id: int, text: str) -> Message:
        await self._call("send_text")
        self._get(conversation_id)
        m = self.add_message_now(conversation_id, self.me, text, status=MessageStatus.PENDING)
        self._publish_received(m)
        return m

    async def reply(self, conversation_id: int, message_id: int, text: str) -> Message:
        await self._call("reply")
        if message_id not in self.messages_:
            raise MessageNotFoundError(f"no message {message_id}")
        m = self.add_message_now(
            conversation_id, self.me, text, status=MessageStatus.PENDING, reply_to=message_id
        )
        self._publish_received(m)
        return m

    def _own(self, message_id: int) -> Message:
        m = self.messages_.get(message_id)
        if m is None:
            raise MessageNotFoundError(f"no message {message_id}")
        if not m.outgoing or m.deleted or m.kind is MessageKind.SYSTEM:
            raise NotAllowedError(
                "not an own message", user_message="You can only change your own messages."
            )
        return m

    async def edit(self, conversation_id: int, message_id: int, text: str) -> None:
        await self._call("edit")
        m = self._own(message_id)
        self.messages_[message_id] = dataclasses.replace(m, body=text, edited_at=self._tick())
        self._message_changed(message_id)

    async def delete(self, conversation_id: int, message_id: int) -> None:
        await self._call("delete")
        m = self._own(message_id)
        self.messages_[message_id] = dataclasses.replace(m, body=None, deleted_at=self._tick())
        self._message_changed(message_id)

    async def react(
        self, conversation_id: int, message_id: int, emoji: str, *, remove: bool = False
    ) -> None:
        await self._call("react")
        if message_id not in self.messages_:
            raise MessageNotFoundError(f"no message {message_id}")
        who = self.reactions_[message_id].setdefault(emoji, set())
        if remove:
            who.discard(self.me)
        else:
            who.add(self.me)
        self._message_changed(message_id)

    async def mark_read(self, conversation_id: int, message_id: int | None = None) -> bool:
        await self._call("mark_read")
        ids = self.by_conversation[conversation_id]
        if not ids:
            return False
        upto = message_id if message_id is not None else ids[-1]
        if upto <= self.read_upto.get(conversation_id, 0):
            return False
        self.read_upto[conversation_id] = upto
        self._conversation_changed(conversation_id)
        return True

    async def typing(self, conversation_id: int, active: bool = True) -> None:
        await self._call("typing")
        self.typing_sent.append((conversation_id, active))

    async def messages(
        self,
        conversation_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[MessageView]:
        await self._call("messages")
        self._get(conversation_id)
        ids = self.by_conversation[conversation_id]
        if after is not None:
            page = [i for i in ids if i > after][:limit]
        else:
            older = [i for i in ids if before is None or i < before]
            page = older[-limit:] if limit > 0 else []
        return [self.message_view(i) for i in page]

    async def message(self, message_id: int) -> MessageView:
        await self._call("message")
        if message_id not in self.messages_:
            raise MessageNotFoundError(f"no message {message_id}")
        return self.message_view(message_id)

    # -- attachments and disappearing messages ------------------------------------------------

    async def send_file(
        self,
        conversation_id: int,
        source: Path | bytes,
        *,
        name: str | None = None,
        caption: str | None = None,
    ) -> Message:
        await self._call("send_file")
        self._get(conversation_id)
        data = source if isinstance(source, bytes) else source.read_bytes()
        if len(data) > self.max_file_bytes:
            raise AttachmentTooLargeError(f"{len(data)} bytes")
        file_name = name or (source.name if isinstance(source, Path) else "file")
        self.sent_files.append((conversation_id, file_name, source, caption))
        media_type = "image/png" if file_name.lower().endswith(".png") else "application/pdf"
        message = self.add_file_now(
            conversation_id,
            self.me,
            file_name,
            data,
            media_type=media_type,
            caption=caption,
            state=TransferState.UPLOADING,
            status=MessageStatus.PENDING,
        )
        self._publish_received(message)
        return message

    def _attachment(self, message_id: int) -> AttachmentView:
        attachment = self.attachments_.get(message_id)
        if attachment is None:
            raise MessageNotFoundError(f"no attachment {message_id}")
        return attachment

    async def download(self, message_id: int) -> None:
        await self._call("download")
        self._attachment(message_id)
        self.set_transfer(message_id, TransferState.DOWNLOADING)

    async def retry_transfer(self, message_id: int) -> None:
        await self._call("retry_transfer")
        attachment = self._attachment(message_id)
        upload = attachment.state is TransferState.UPLOAD_FAILED
        self.set_transfer(
            message_id, TransferState.UPLOADING if upload else TransferState.DOWNLOADING
        )

    async def cancel_transfer(self, message_id: int) -> None:
        await self._call("cancel_transfer")
        attachment = self._attachment(message_id)
        if attachment.state in (TransferState.UPLOADING, TransferState.UPLOAD_FAILED):
            self.expire(self.messages_[message_id].conversation_id, [message_id])
        else:
            self.set_transfer(message_id, TransferState.AVAILABLE)

    def _readable(self, message_id: int) -> bytes:
        if not self._attachment(message_id).readable:
            raise AttachmentNotDownloadedError(f"message {message_id}")
        return self.files_[message_id]

    async def save_attachment(self, message_id: int, destination: Path) -> Path:
        await self._call("save_attachment")
        destination.write_bytes(self._readable(message_id))
        self.saved.append((message_id, destination))
        return destination

    async def open_attachment(self, message_id: int) -> Path:
        await self._call("open_attachment")
        data = self._readable(message_id)
        path = Path("/nonexistent/open") / self._attachment(message_id).name
        del data
        self.opened.append(path)
        return path

    async def attachment_bytes(self, message_id: int, *, max_bytes: int = 50 << 20) -> bytes:
        await self._call("attachment_bytes")
        data = self._readable(message_id)
        if len(data) > max_bytes:
            raise AttachmentTooLargeError(f"{len(data)} bytes")
        return data

    async def set_disappearing_timer(self, conversation_id: int, seconds: int) -> None:
        await self._call("set_disappearing_timer")
        conversation = self._get(conversation_id)
        if seconds != 0 and not 10 <= seconds <= 365 * 86400:
            raise InvalidTimerError(f"{seconds} seconds")
        self.timers_set.append((conversation_id, seconds))
        self.conversations_[conversation_id] = dataclasses.replace(
            conversation, disappearing_seconds=seconds
        )
        note = self.add_message_now(
            conversation_id,
            self.me,
            None,
            note=Note(NoteKind.TIMER_CHANGED, actor=self.me, seconds=seconds),
        )
        self._publish_received(note)
        self._conversation_changed(conversation_id)

    async def restart_conversation(
        self, conversation_id: int, *, leave_out: Sequence[str] = ()
    ) -> None:
        await self._call("restart_conversation")
        self._get(conversation_id)
        if conversation_id not in self.stuck_:
            raise NotAllowedError(
                "the group works",
                user_message="This conversation works; there is nothing to start again.",
            )
        self.stuck_.discard(conversation_id)
        self.restarted.append((conversation_id, tuple(leave_out)))
        note = self.add_message_now(
            conversation_id, self.me, None, note=Note(NoteKind.RESTARTED, accounts=tuple(leave_out))
        )
        self._publish_received(note)
        self._conversation_changed(conversation_id)

    async def search(
        self, query: str, *, limit: int = 50, conversation_id: int | None = None
    ) -> list[SearchHit]:
        await self._call("search")
        words = [w.casefold() for w in query.split() if w]
        hits: list[SearchHit] = []
        for mid in sorted(self.messages_, reverse=True):
            m = self.messages_[mid]
            if m.body is None or m.kind is MessageKind.SYSTEM:
                continue
            if conversation_id is not None and m.conversation_id != conversation_id:
                continue
            text = m.body.casefold()
            if words and all(w in text for w in words):
                snippet = m.body
                for w in query.split():
                    start = snippet.casefold().find(w.casefold())
                    if start >= 0:
                        end = start + len(w)
                        snippet = f"{snippet[:start]}\x02{snippet[start:end]}\x03{snippet[end:]}"
                hits.append(SearchHit(m, snippet))
                if len(hits) >= limit:
                    break
        return hits

    # -- devices (docs/devices.md) ---------------------------------------------------------

    def add_device_now(
        self,
        name: str,
        *,
        last_seen_at: int | None = None,
        this_device: bool = False,
        verified: bool = True,
        client_id: str | None = None,
    ) -> DeviceView:
        device = DeviceView(
            client_id=client_id or (self.me + "-c" if this_device else secrets.token_hex(16)),
            name=name,
            last_seen_at=last_seen_at,
            this_device=this_device,
            verified=verified,
        )
        self.devices_.append(device)
        return device

    def _devices_changed(self) -> None:
        self.bus.publish(DevicesChanged())

    async def devices(self) -> list[DeviceView]:
        await self._call("devices")
        if not self._has_account:
            raise NoAccountError("no account")
        return list(self.devices_)

    async def device_name(self) -> str:
        await self._call("device_name")
        own = next((d for d in self.devices_ if d.this_device), None)
        return own.name if own is not None else "This computer"

    async def rename_device(self, name: str) -> None:
        await self._call("rename_device")
        self.devices_ = [
            dataclasses.replace(d, name=name) if d.this_device else d for d in self.devices_
        ]
        self._devices_changed()

    async def remove_device(self, client_id: str) -> None:
        await self._call("remove_device")
        if len(self.devices_) <= 1:
            raise ClientError(
                "last device",
                user_message="This is the account's only device: it cannot be removed.",
            )
        target = next((d for d in self.devices_ if d.client_id == client_id), None)
        if target is None:
            raise ClientError("no such device", user_message="That device is gone already.")
        self.devices_.remove(target)
        self._devices_changed()
        if target.this_device:
            self.set_connection(ConnectionState.REMOVED, REMOVED_SENTENCE)

    async def start_link(self) -> FakeDeviceLink:
        await self._call("start_link")
        link = FakeDeviceLink(self, self.server_url)
        self.links.append(link)
        return link

    def offer_link(self, device_name: str) -> None:
        """The new device answers the newest link (its offer reaches ``wait_offer``)."""
        self.links[-1].offered.set_result(LinkOffer(device_name))

    def expire_link(self) -> None:
        """The newest link's code expires while it waits for an offer."""
        self.links[-1].offered.set_exception(LinkExpiredError("link expired"))

    async def link_account(
        self,
        code: LinkCode,
        *,
        device_name: str,
        progress: Callable[[Any], None] | None = None,
    ) -> AccountInfo:
        await self._call("link_account")
        self.linked_with = (code, device_name)
        stages = [
            (LinkStage.WAITING_FOR_DEVICE, None),
            (LinkStage.WAITING_FOR_APPROVAL, None),
            (LinkStage.REGISTERING, None),
            *[(LinkStage.TRANSFERRING_HISTORY, f) for f in self.progress_steps],
        ]
        await self._stages(stages, progress)
        if progress is not None:
            progress(LinkProgress(LinkStage.JOINING_CONVERSATIONS, None))
            progress(LinkProgress(LinkStage.DONE, 1.0))
        self.server_url = code.server_url or self.server_url
        self._has_account = True
        self.handle = None
        self.add_device_now(device_name, this_device=True)
        info = await self.account()
        assert info is not None
        return info

    async def _stages(
        self, stages: Sequence[tuple[Any, float | None]], progress: Callable[[Any], None] | None
    ) -> None:
        """Report ``stages``, then wait at :attr:`progress_gate` if set."""
        for stage, fraction in stages:
            if progress is not None:
                progress(LinkProgress(stage, fraction))
            await asyncio.sleep(0)
        if self.progress_gate is not None:
            await self.progress_gate.wait()


# -- the devices API's records, as the fake hands them out ----------------------------------

REMOVED_SENTENCE = "This device was removed from your account on another device."
LINK_EXPIRED_SENTENCE = LinkExpiredError.default_user_message
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def fake_link_code(server_url: str) -> LinkCode:
    return parse_link_code(
        "".join(secrets.choice(CROCKFORD) for _ in range(24)), server_url=server_url
    )


class FakeDeviceLink:
    """A fake ``DeviceLink``: the test answers it with ``offer_link`` / ``expire_link``."""

    def __init__(self, client: FakeClient, server_url: str, *, lifetime_ms: int = 600_000) -> None:
        import time

        self.client = client
        self.code = fake_link_code(server_url)
        self.expires_at = int(time.time() * 1000) + lifetime_ms
        self.offered: asyncio.Future[LinkOffer] = asyncio.get_running_loop().create_future()
        self.offer: LinkOffer | None = None
        self.history: bool | None = None
        self.declined = False
        self.cancelled = False
        self._task: asyncio.Task[Any] | None = None

    async def _cancellable(self, coro: Any) -> Any:
        """Run ``coro``; :meth:`cancel` ends it with ``LinkCancelledError``, as the real one."""
        self._task = asyncio.current_task()
        try:
            return await coro
        except asyncio.CancelledError:
            if self.cancelled:
                raise LinkCancelledError("cancelled") from None
            raise
        finally:
            self._task = None

    async def wait_offer(self) -> LinkOffer:
        await self.client._call("wait_offer")
        self.offer = await self._cancellable(asyncio.shield(self.offered))
        return self.offer

    async def approve(
        self, *, history: bool = True, progress: Callable[[Any], None] | None = None
    ) -> None:
        await self.client._call("approve")
        assert self.offer is not None, "approve before the offer"
        self.history = history
        stages: list[tuple[Any, float | None]] = [(LinkStage.REGISTERING, None)]
        if history:
            stages += [(LinkStage.TRANSFERRING_HISTORY, f) for f in self.client.progress_steps]
        await self._cancellable(self.client._stages(stages, progress))
        if progress is not None:
            progress(LinkProgress(LinkStage.JOINING_CONVERSATIONS, 0.5))
            progress(LinkProgress(LinkStage.DONE, 1.0))
        self.client.add_device_now(self.offer.device_name, last_seen_at=self.client.now_ms)
        self.client._devices_changed()

    async def decline(self) -> None:
        await self.client._call("decline")
        self.declined = True

    async def cancel(self) -> None:
        self.client.calls["cancel"] += 1
        self.cancelled = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])


# -- a realistic scene (screenshots, layout tests) ------------------------------------------

ALICE = "a11ce" + "0" * 59
BOB = "b0b" + "1" * 61
CAROL = "ca401" + "2" * 59
DAVID = "dav1d" + "3" * 59
ERIN = "e41n" + "4" * 60

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def populate(client: FakeClient, now_ms: int | None = None) -> dict[str, int]:
    """Contacts, a lively group and a few direct chats; the ids by name."""
    now = now_ms if now_ms is not None else client.now_ms
    client.add_contact_now(ALICE, "Alice Martin", handle="alice@chat.example.org", verified=True)
    client.add_contact_now(BOB, "Bob Okafor", handle="bob@chat.example.org")
    client.add_contact_now(CAROL, "Carol Nguyen", handle="carol@chat.example.org")
    client.add_contact_now(DAVID, "David Cohen", handle="david@chat.example.org")
    client.add_contact_now(ERIN, "Erin Schulz", handle="erin@chat.example.org")
    yesterday = now - DAY - 2 * HOUR
    group = client.add_conversation_now("Weekend hike 🥾", [ALICE, BOB, CAROL], at=yesterday)
    g = group.id
    me = client.me
    client.add_message_now(
        g, me, None, at=yesterday, note=Note(NoteKind.CREATED, name="Weekend hike 🥾")
    )
    client.add_message_now(
        g, me, None, at=yesterday + 1000, note=Note(NoteKind.ADDED, me, (ALICE, BOB, CAROL))
    )
    first = client.add_message_now(
        g, ALICE, "Who's in for Saturday? The forecast says sun ☀️", at=yesterday + 5 * MINUTE
    )
    client.add_message_now(g, BOB, "Me! Which trail?", at=yesterday + 7 * MINUTE)
    client.add_message_now(
        g,
        CAROL,
        "I'd love the ridge loop, about 14 km with a lake halfway. Map: "
        "https://maps.example.org/ridge-loop",
        at=yesterday + 9 * MINUTE,
    )
    client.add_reaction_now(first.id, BOB, "👍")
    client.add_reaction_now(first.id, CAROL, "👍")
    today = now - 3 * HOUR
    plan = client.add_message_now(g, me, "Ridge loop it is. Meet at the station at 8:15?", at=today)
    client.add_message_now(g, me, "I'll bring the stove and coffee", at=today + 20_000, edited=True)
    client.add_message_now(g, ALICE, "Perfect 👌", at=today + 4 * MINUTE, reply_to=plan.id)
    client.add_message_now(
        g, ALICE, "I can drive two people back afterwards", at=today + 4 * MINUTE + 30_000
    )
    client.add_reaction_now(plan.id, ALICE, "❤️")
    client.add_reaction_now(plan.id, BOB, "❤️")
    client.add_reaction_now(plan.id, me, "❤️")
    client.add_message_now(g, BOB, "🎉🎉", at=today + 30 * MINUTE)
    client.add_message_now(
        g, CAROL, "Bringing snacks. Does anyone need a headlamp?", at=now - 20 * MINUTE
    )
    client.add_message_now(
        g,
        me,
        "I have a spare one, I'll put it in my bag tonight.",
        at=now - 6 * MINUTE,
        status=MessageStatus.DELIVERED,
    )
    client.add_message_now(
        g, me, "See you all Saturday!", at=now - 5 * MINUTE, status=MessageStatus.SENT
    )
    client.read_upto[g] = max(client.by_conversation[g])
    client.add_message_now(g, ALICE, "Can't wait 🏔️", at=now - 2 * MINUTE)

    alice = client.add_conversation_now(None, peer=ALICE, at=now - 5 * HOUR)
    client.add_message_now(alice.id, ALICE, "Did you get the tickets?", at=now - 5 * HOUR)
    client.add_message_now(
        alice.id, me, "Yes, two for Friday 🎟️", at=now - 4 * HOUR, status=MessageStatus.READ
    )
    client.read_upto[alice.id] = max(client.by_conversation[alice.id])
    bob = client.add_conversation_now(None, peer=BOB, at=now - 2 * DAY)
    client.add_message_now(bob.id, BOB, "Thanks for yesterday!", at=now - 2 * DAY)
    client.add_message_now(bob.id, BOB, "Let's do it again soon", at=now - 2 * DAY + MINUTE)
    client.add_message_now(bob.id, BOB, "Also: the photos are up", at=now - 2 * DAY + 2 * MINUTE)
    team = client.add_conversation_now(
        "Book club 📚", [ALICE, DAVID, ERIN], muted=True, at=now - 3 * DAY
    )
    for i, (who, text) in enumerate(
        [
            (DAVID, "Next month: “The Left Hand of Darkness”"),
            (ERIN, "Great pick"),
            (DAVID, "Chapter 1-8 by the 12th"),
            (ERIN, "مرحبا بالجميع! سأحضر الكعك"),
            (DAVID, "読書会は楽しみです"),
        ]
    ):
        client.add_message_now(team.id, who, text, at=now - 3 * DAY + i * MINUTE)
    carol = client.add_conversation_now(None, peer=CAROL, at=now - 9 * DAY)
    client.add_message_now(
        carol.id, me, "Here's the recipe I promised", at=now - 9 * DAY, status=MessageStatus.READ
    )
    client.read_upto[carol.id] = max(client.by_conversation[carol.id])
    david = client.add_conversation_now(None, peer=DAVID, at=now - 40 * DAY)
    client.add_message_now(david.id, DAVID, "Welcome aboard!", at=now - 40 * DAY)
    client.read_upto[david.id] = max(client.by_conversation[david.id])
    return {"group": g, "alice": alice.id, "bob": bob.id, "books": team.id, "carol": carol.id}


def scenic_image(width: int = 1200, height: int = 800, fmt: str = "PNG") -> bytes:
    """A made-up landscape photo (sky, sun, mountains, a lake) encoded as ``fmt``."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF
    from PySide6.QtGui import QColor, QImage, QImageWriter, QLinearGradient, QPainter, QPolygonF

    image = QImage(width, height, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    sky = QLinearGradient(0, 0, 0, height * 0.6)
    sky.setColorAt(0, QColor("#F6B26B"))
    sky.setColorAt(0.55, QColor("#F9D9A6"))
    sky.setColorAt(1, QColor("#A7C7E7"))
    painter.fillRect(image.rect(), sky)
    painter.setPen(QColor(0, 0, 0, 0))
    painter.setBrush(QColor("#FFF3C4"))
    painter.drawEllipse(QPointF(width * 0.72, height * 0.28), height * 0.08, height * 0.08)

    def ridge(color: str, base: float, peaks: list[tuple[float, float]]) -> None:
        points = [QPointF(0, height * base)]
        points += [QPointF(width * x, height * y) for x, y in peaks]
        points += [QPointF(width, height * base), QPointF(width, height), QPointF(0, height)]
        painter.setBrush(QColor(color))
        painter.drawPolygon(QPolygonF(points))

    ridge("#7B8BA8", 0.62, [(0.12, 0.38), (0.3, 0.5), (0.48, 0.3), (0.66, 0.48), (0.85, 0.36)])
    ridge("#4F6483", 0.7, [(0.2, 0.52), (0.4, 0.6), (0.58, 0.46), (0.78, 0.6), (0.95, 0.5)])
    lake = QLinearGradient(0, height * 0.72, 0, height)
    lake.setColorAt(0, QColor("#6FA3C8"))
    lake.setColorAt(1, QColor("#2F5F86"))
    painter.setBrush(lake)
    painter.drawRect(0, round(height * 0.72), width, height)
    ridge("#2E4A3A", 0.86, [(0.1, 0.8), (0.25, 0.84), (0.5, 0.78), (0.7, 0.86), (0.9, 0.8)])
    painter.end()
    array = QByteArray()
    buffer = QBuffer(array)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, QByteArray(fmt.encode()))
    writer.setQuality(80)
    writer.write(image)
    buffer.close()
    return bytes(array.data())


def populate_attachments(client: FakeClient, cid: int, now_ms: int | None = None) -> dict[str, int]:
    """In ``cid``: a photo, a file card sent, one mid-download, one failed, and a timer on."""
    now = now_ms if now_ms is not None else client.now_ms
    photo = scenic_image()
    thumb = scenic_image(320, 213, "JPEG")
    peer = client.conversations_[cid].peer_account_id or ALICE
    ids: dict[str, int] = {}
    ids["sent"] = client.add_file_now(
        cid,
        client.me,
        "ridge-loop-route.pdf",
        b"%PDF-1.7 route",
        media_type="application/pdf",
        size=4_200_000,
        caption="The route, with the water stops",
        at=now - 40 * MINUTE,
        status=MessageStatus.READ,
    ).id
    ids["downloading"] = client.add_file_now(
        cid,
        peer,
        "trail-map-hires.zip",
        b"PK zip",
        media_type="application/zip",
        size=18_600_000,
        state=TransferState.DOWNLOADING,
        done=7_900_000,
        at=now - 12 * MINUTE,
    ).id
    ids["failed"] = client.add_file_now(
        cid,
        peer,
        "gear-list.xlsx",
        b"xlsx",
        media_type="application/vnd.ms-excel",
        size=48_000,
        state=TransferState.FAILED,
        error="The file that arrived is damaged or was changed on the way, so it was not kept.",
        at=now - 11 * MINUTE,
    ).id
    ids["photo"] = client.add_file_now(
        cid,
        peer,
        "lake-at-sunrise.jpg",
        photo,
        media_type="image/png",
        state=TransferState.DOWNLOADED,
        size=2_140_000,
        width=1200,
        height=800,
        thumbnail=thumb,
        caption="The lake this morning 🌅",
        at=now - 9 * MINUTE,
    ).id
    conversation = client.conversations_[cid]
    client.conversations_[cid] = dataclasses.replace(conversation, disappearing_seconds=3600)
    ids["note"] = client.add_message_now(
        cid,
        client.me,
        None,
        at=now - 8 * MINUTE,
        note=Note(NoteKind.TIMER_CHANGED, actor=client.me, seconds=3600),
    ).id
    ids["timed"] = client.add_message_now(
        cid,
        peer,
        "The gate code is 4471, delete after reading 🙂",
        at=now - 2 * MINUTE,
        expires_after=3600,
        expires_at=now + 58 * MINUTE,
    ).id
    ids["timed_own"] = client.add_message_now(
        cid,
        client.me,
        "Got it, thanks!",
        at=now - MINUTE,
        status=MessageStatus.READ,
        expires_after=3600,
        expires_at=now + 59 * MINUTE,
    ).id
    client.read_upto[cid] = max(client.by_conversation[cid])
    return ids
