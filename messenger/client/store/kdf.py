"""Deriving keys from passphrases: scrypt (RFC 7914).

Used by the recovery file (:mod:`.key_wrap`) and by backups
(:mod:`messenger.client.backup`). A passphrase is normalized to Unicode NFC
and encoded as UTF-8 first, so that the same passphrase typed on another
OS or keyboard layout derives the same key.

The default cost is N = 2**17, r = 8, p = 1 (128 MiB, about half a second
here), the figure OWASP recommends for scrypt. The parameters are stored
next to every salt, so they can be raised later; files written with other
parameters still open, within two bounds:

* **Ceiling** (every parameter set, checked when it is made, so before any
  derivation): N <= 2**20, r <= 8, p <= 16, memory 128 * N * r <= 1 GiB,
  and work N * r * p <= 2**23, eight times the default's (a few seconds).
  The app itself writes only the default, so this leaves room to raise N
  eightfold, while a crafted recovery file or backup can no longer
  ask for minutes of CPU and a gigabyte (N = 2**22, r = 2, p = 16 was
  accepted before and took 144 s). Parameters read from a file above the
  ceiling raise :class:`KdfLimitError`, a :class:`ClientError` (the
  recovery file and backup readers raise its subclasses that are also
  their "damaged file" errors).
* **Floor** (new files only): N >= 2**14 and memory >= 16 MiB, an eighth
  of the default's cost. :func:`check_params_for_new_file` refuses weaker
  parameters unless they were made with ``allow_weak=True``, which only
  tests and benchmarks use. Reading is not floored: a weak file costs
  nothing to open, nothing derived from it leaves the process, and a file
  is always rewritten with the caller's parameters, never the file's.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import KdfLimitError, WeakPassphraseError

__all__ = [
    "DEFAULT_SCRYPT",
    "MAX_SCRYPT_LOG2_N",
    "MAX_SCRYPT_MEMORY",
    "MAX_SCRYPT_P",
    "MAX_SCRYPT_R",
    "MAX_SCRYPT_WORK",
    "MIN_PASSPHRASE_LENGTH",
    "MIN_SCRYPT_LOG2_N",
    "MIN_SCRYPT_MEMORY",
    "SALT_SIZE",
    "KdfLimitError",
    "KdfParamsError",
    "ScryptParams",
    "check_new_passphrase",
    "check_params_for_new_file",
    "derive_key",
    "new_salt",
]

MIN_PASSPHRASE_LENGTH: Final = 8
SALT_SIZE: Final = 16

#: The ceiling: no parameter set above it is ever made, read or derived with.
MAX_SCRYPT_LOG2_N: Final = 20
MAX_SCRYPT_R: Final = 8
MAX_SCRYPT_P: Final = 16
MAX_SCRYPT_MEMORY: Final = 1 << 30  # 128 * r * n bytes
MAX_SCRYPT_WORK: Final = 1 << 23  # n * r * p: eight times the default's 2**20

#: The floor for new files (tests and benchmarks opt out with ``allow_weak``).
MIN_SCRYPT_LOG2_N: Final = 14
MIN_SCRYPT_MEMORY: Final = 16 << 20


class KdfParamsError(ValueError):
    """Stored KDF parameters are malformed, or parameters are too weak for a new file."""


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """The scrypt cost parameters (RFC 7914 §2), within the ceiling.

    ``allow_weak`` lets parameters below the floor write new files; it is
    for tests and benchmarks, is not stored, and does not affect equality.
    """

    n: int = 1 << 17
    r: int = 8
    p: int = 1
    allow_weak: bool = field(default=False, kw_only=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.r < 1 or self.p < 1:
            raise KdfParamsError("scrypt n must be a power of two >= 2, and r and p positive")
        self.check_ceiling()

    def check_ceiling(self) -> None:
        """KdfLimitError if deriving with these parameters would cost too much."""
        if (
            self.n > 1 << MAX_SCRYPT_LOG2_N
            or self.r > MAX_SCRYPT_R
            or self.p > MAX_SCRYPT_P
            or 128 * self.r * self.n > MAX_SCRYPT_MEMORY
            or self.n * self.r * self.p > MAX_SCRYPT_WORK
        ):
            raise KdfLimitError(
                f"scrypt n={self.n}, r={self.r}, p={self.p} is above the ceiling "
                f"(n <= 2**{MAX_SCRYPT_LOG2_N}, r <= {MAX_SCRYPT_R}, p <= {MAX_SCRYPT_P}, "
                f"n*r*p <= 2**23, 128*n*r <= 1 GiB)"
            )

    @property
    def below_floor(self) -> bool:
        """Whether these parameters are too weak for a new file (ignoring ``allow_weak``)."""
        return self.n < 1 << MIN_SCRYPT_LOG2_N or 128 * self.r * self.n < MIN_SCRYPT_MEMORY

    def to_json(self, salt: bytes) -> dict[str, object]:
        return {
            "name": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": base64.b64encode(salt).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: object) -> tuple[ScryptParams, bytes]:
        """Parse ``{"name": "scrypt", "n", "r", "p", "salt"}``: the parameters and salt.

        KdfParamsError if it is malformed; KdfLimitError if it is above the
        ceiling (checked before anything is derived).
        """
        if not isinstance(data, dict) or data.get("name") != "scrypt":
            raise KdfParamsError("unknown key derivation function")
        n, r, p, salt = data.get("n"), data.get("r"), data.get("p"), data.get("salt")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
            raise KdfParamsError("scrypt parameters must be integers")
        if not isinstance(salt, str):
            raise KdfParamsError("missing salt")
        try:
            raw_salt = base64.b64decode(salt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KdfParamsError("salt is not base64") from exc
        if not 16 <= len(raw_salt) <= 64:
            raise KdfParamsError("salt length is out of bounds")
        assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
        return cls(n=n, r=r, p=p), raw_salt


DEFAULT_SCRYPT: Final = ScryptParams()


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_SIZE)


def _encode_passphrase(passphrase: str) -> bytes:
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def check_new_passphrase(passphrase: str) -> None:
    """Refuse a new recovery or backup passphrase that is too short."""
    if len(unicodedata.normalize("NFC", passphrase)) < MIN_PASSPHRASE_LENGTH:
        raise WeakPassphraseError("passphrase too short")


def check_params_for_new_file(params: ScryptParams) -> None:
    """Refuse parameters below the floor for a new file, unless made with ``allow_weak``."""
    if params.below_floor and not params.allow_weak:
        raise KdfParamsError(
            f"scrypt n={params.n}, r={params.r} is below the floor for new files "
            f"(n >= 2**{MIN_SCRYPT_LOG2_N}, 128*n*r >= 16 MiB); "
            "tests may pass ScryptParams(..., allow_weak=True)"
        )


def derive_key(passphrase: str, salt: bytes, params: ScryptParams, length: int = 32) -> bytes:
    """scrypt(passphrase, salt) with ``params``: ``length`` bytes.

    The ceiling is checked again here, so nothing above it is ever derived.
    """
    params.check_ceiling()
    kdf = Scrypt(salt=salt, length=length, n=params.n, r=params.r, p=params.p)
    return kdf.derive(_encode_passphrase(passphrase))
