"""Contact tokens: what lets someone claim an account's KeyPackages (docs/metadata.md §1).

The server keeps each client's KeyPackages to hand out, and a KeyPackage's
leaf names its account (the credential) and its client's contact queue (the
delivery address). Sealed under the key file alone, the operator, who holds
that file, could join the two. So an account's KeyPackages are sealed at
rest under a key the server derives from the key file **and the account's
contact token**, a 32-byte secret that the server does not store: it sees
the token while a KeyPackage is uploaded (the leaf carries it) and while
one is claimed (the claim presents it), and keeps neither.

Who has the token: the account's own devices (they derive it from the
account key, ``messenger/client/contact_tokens.py``), whoever was given an
invite link (it carries the token), whoever looks up the account's handle
(the server keeps the token sealed under a key from the handle, which it
does not store, and hands that box out; the client opens it with the
handle), and every member of a group the account is in: each of its leaves
carries the token in the ``contact_token`` extension (0xF003, a private-use
LeafNode extension, RFC 9420 §13.1, §17.3), so people who share a group can
add each other to new ones.

The handle box is ``0x01 ‖ salt (16 random bytes) ‖ nonce (12 bytes) ‖
AES-256-GCM(token) ‖ tag`` under ``scrypt(handle, salt="messenger handle
contact v1\n" ‖ salt, N=2¹⁴, r=8, p=1)``: 77 bytes. The client seals it
before it has an account ID, so that registration can carry it. Handles
are short and often guessable, so the key is memory-hard (16 MiB, tens of
milliseconds a guess) and salted per box: whoever holds a copy of the
database must pay that for every handle they try against every box, rather
than hash a dictionary once. It cannot keep the token from someone who
knows the handle: a handle is an address for being found. A server that
hands out another account's box gains nothing: the token it holds is
that account's, and the claim it is tried on fails.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONTACT_BOX_BYTES",
    "CONTACT_TOKEN_BYTES",
    "CONTACT_TOKEN_EXTENSION",
]

#: The LeafNode extension that carries its member's account's contact token.
CONTACT_TOKEN_EXTENSION: Final = 0xF003
#: A contact token is this long.
CONTACT_TOKEN_BYTES: Final = 32

#: A handle's contact box: a version byte (1), a 16-byte salt, a 12-byte nonce,
#: the sealed token and a 16-byte tag (module docstring;
#: ``messenger/client/handle_box.py`` seals and opens it).
CONTACT_BOX_BYTES: Final = 1 + 16 + 12 + CONTACT_TOKEN_BYTES + 16
