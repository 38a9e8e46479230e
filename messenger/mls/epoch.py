"""Entering an epoch: a member's state for it from its secrets (RFC 9420 §8, §8.2, §12.4.2).

Every way into an epoch ends the same way: the GroupContext with its
confirmed transcript hash, the key schedule, the confirmation tag, then the
secret tree over the new tree's leaves (RFC 9420 §9) and the interim
transcript hash covering the tag (RFC 9420 §8.2).

* :func:`advance_epoch` -- the epoch after a Commit, from the previous
  epoch's ``init_secret`` (or an external one, RFC 9420 §8.3): used when a
  member creates a Commit, processes one, and joins by an external Commit.
  The committer computes the confirmation tag; a receiver passes the one it
  got, which is verified (RFC 9420 §12.4.2).
* :func:`epoch_state` -- the common last step, also for a new group
  (RFC 9420 §11) and a join from a Welcome (RFC 9420 §12.4.3.1), whose
  secrets come from elsewhere.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from .ciphersuite import CipherSuite
from .group_context import GroupContext
from .group_state import EpochState, GroupConfig
from .key_schedule import EpochSecrets, epoch_from_init_secret
from .ratchet_tree import PublicTree
from .secret_tree import SecretTree
from .transcript import confirmation_tag as make_confirmation_tag
from .transcript import interim_transcript_hash, verify_confirmation_tag
from .treekem import PrivateTree

__all__ = ["LAST_EPOCH", "advance_epoch", "epoch_state"]

#: The last epoch: the GroupContext's ``epoch`` is a uint64 (RFC 9420 §8.1),
#: so a group there can take no more Commits.
LAST_EPOCH: Final = (1 << 64) - 1


def epoch_state(
    suite: CipherSuite,
    config: GroupConfig,
    *,
    context: GroupContext,
    tree: PublicTree,
    private: PrivateTree,
    secrets: EpochSecrets,
    confirmation_tag: bytes,
    signature_private_key: bytes,
) -> EpochState:
    """The state of the epoch of ``context``, whose secrets and tag are known."""
    return EpochState(
        context=context,
        tree=tree,
        private=private,
        secrets=secrets,
        secret_tree=SecretTree(
            suite, secrets.encryption_secret, tree.n_leaves, config=config.secret_tree_config
        ),
        interim_transcript_hash=interim_transcript_hash(
            suite, context.confirmed_transcript_hash, confirmation_tag
        ),
        confirmation_tag=confirmation_tag,
        signature_private_key=signature_private_key,
    )


def advance_epoch(
    suite: CipherSuite,
    config: GroupConfig,
    provisional: GroupContext,
    confirmed: bytes,
    *,
    init_secret: bytes,
    commit_secret: bytes | None,
    psk_secret: bytes | None,
    tree: PublicTree,
    private: PrivateTree,
    signature_private_key: bytes,
    confirmation_tag: bytes | None = None,
) -> tuple[EpochState, bytes]:
    """The next epoch's state and its ``joiner_secret`` (RFC 9420 §8, §12.4.2).

    ``provisional`` is the new GroupContext but for its confirmed transcript
    hash, ``confirmed``. ``confirmation_tag`` is the received Commit's, checked against the
    new ``confirmation_key`` (:class:`~messenger.mls.errors.AuthenticationError`
    if it differs); ``None`` computes it, for the committer.
    """
    context = replace(provisional, confirmed_transcript_hash=confirmed)
    keys = epoch_from_init_secret(suite, init_secret, commit_secret, context.to_bytes(), psk_secret)
    confirmation_key = keys.secrets.confirmation_key
    if confirmation_tag is None:
        confirmation_tag = make_confirmation_tag(suite, confirmation_key, confirmed)
    else:
        verify_confirmation_tag(suite, confirmation_key, confirmed, confirmation_tag)
    state = epoch_state(
        suite,
        config,
        context=context,
        tree=tree,
        private=private,
        secrets=keys.secrets,
        confirmation_tag=confirmation_tag,
        signature_private_key=signature_private_key,
    )
    return state, keys.joiner_secret
