"""Declarative JSON fields: one description drives parsing, output and schema.

Each request or response model of :mod:`messenger.api.models` lists its
fields as :class:`Field` objects. From that one list come

* :meth:`Field.parse` -- strict validation of a decoded JSON value (type,
  length, range, base64url form), raising :class:`~messenger.api.errors.ApiError`
  with :attr:`~messenger.api.errors.ErrorCode.INVALID_FIELD` that names the field;
* :meth:`Field.dump` -- the JSON value of a Python value;
* :meth:`Field.schema` -- the JSON Schema (OpenAPI 3.1) of the field.

Binary values travel as unpadded base64url (RFC 4648 §5). Only the canonical
encoding is accepted: no padding, no other alphabet, no stray bits in the
last character, so one byte string has exactly one JSON form.
"""

from __future__ import annotations

import abc
import base64
import binascii
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from . import padding
from .delivery_address import SEALED_ADDRESS_LENGTH
from .errors import ApiError, ErrorCode

if TYPE_CHECKING:
    from .models import Model

__all__ = [
    "ID_BYTES",
    "Bytes",
    "Choice",
    "DeliveryAddress",
    "Field",
    "Flag",
    "Ident",
    "Int",
    "ListOf",
    "Nested",
    "Padded",
    "Text",
    "b64decode",
    "b64encode",
]

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")

#: Account, client and queue IDs are this many random bytes (22 base64url characters).
ID_BYTES: Final = 16

_U64_MAX: Final = 2**64 - 1


def b64encode(data: bytes) -> str:
    """Unpadded base64url (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """The bytes of canonical unpadded base64url; :class:`ValueError` otherwise."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - the regex rules this out
        raise ValueError("not unpadded base64url") from exc
    if b64encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


class Field(abc.ABC):
    """One named JSON field; ``optional`` fields may be absent or ``null``."""

    def __init__(self, name: str, *, optional: bool = False, description: str = "") -> None:
        self.name = name
        self.optional = optional
        self.description = description

    @abc.abstractmethod
    def parse(self, value: object, path: str) -> Any:
        """The Python value of JSON ``value``; :class:`ApiError` if it is invalid."""

    @abc.abstractmethod
    def dump(self, value: Any) -> object:
        """The JSON value of Python ``value``."""

    @abc.abstractmethod
    def _schema(self) -> dict[str, object]:
        """The JSON Schema of a (non-null) value."""

    def schema(self) -> dict[str, object]:
        """The JSON Schema of the field, with its description."""
        result = self._schema()
        if self.description:
            result["description"] = self.description
        return result

    @staticmethod
    def _fail(path: str, reason: str) -> ApiError:
        return ApiError.invalid_field(path, reason)


class Bytes(Field):
    """A byte string carried as unpadded base64url."""

    def __init__(
        self,
        name: str,
        *,
        min_len: int = 0,
        max_len: int,
        optional: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(name, optional=optional, description=description)
        self.min_len = min_len
        self.max_len = max_len

    def parse(self, value: object, path: str) -> bytes:
        if not isinstance(value, str):
            raise self._fail(path, "expected a base64url string")
        if len(value) > (self.max_len * 4 + 2) // 3:
            raise self._fail(path, f"longer than {self.max_len} bytes")
        try:
            data = b64decode(value)
        except ValueError as exc:
            raise self._fail(path, str(exc)) from None
        if not self.min_len <= len(data) <= self.max_len:
            raise self._fail(path, f"length must be {self.min_len}..{self.max_len} bytes")
        return data

    def dump(self, value: Any) -> object:
        return b64encode(value)

    def _schema(self) -> dict[str, object]:
        return {
            "type": "string",
            "contentEncoding": "base64url",
            "pattern": "^[A-Za-z0-9_-]*$",
            "minLength": (self.min_len * 4 + 2) // 3,
            "maxLength": (self.max_len * 4 + 2) // 3,
        }


class Padded(Bytes):
    """An MLS message, carried in its padded envelope (:mod:`messenger.api.padding`).

    ``max_len`` is the message's limit; the envelope may be a bucket larger.
    In Python the value is the bare message: :meth:`parse` checks and removes
    the canonical padding, :meth:`dump` adds it.
    """

    def __init__(
        self,
        name: str,
        *,
        max_len: int,
        optional: bool = False,
        description: str = "",
    ) -> None:
        # Any length decodes; :func:`padding.unpad` then tells a bare MLS
        # message (an old client) from an envelope of the wrong size.
        super().__init__(
            name,
            min_len=1,
            max_len=padding.padded_length(max_len),
            optional=optional,
            description=description or "an MLS message in its padded envelope",
        )
        self.message_max_len = max_len

    def parse(self, value: object, path: str) -> bytes:
        data = super().parse(value, path)
        try:
            message = padding.unpad(data)
        except padding.PaddingError as exc:
            if exc.outdated:
                raise ApiError(
                    ErrorCode.OUTDATED_CLIENT,
                    "this app is too old for the server: messages must be padded; update the app",
                    {"field": path or self.name},
                ) from None
            raise self._fail(path, str(exc)) from None
        if len(message) > self.message_max_len:
            raise self._fail(path, f"longer than {self.message_max_len} bytes")
        return message

    def dump(self, value: Any) -> object:
        return b64encode(padding.pad(value))


class Ident(Field):
    """An account, client or queue ID: :data:`ID_BYTES` random bytes in base64url."""

    LENGTH: Final = (ID_BYTES * 4 + 2) // 3
    #: The lengths a value may have, and what the refusal says it expected.
    LENGTHS: tuple[int, ...] = (LENGTH,)
    EXPECTED: str = f"a {LENGTH}-character ID"

    def parse(self, value: object, path: str) -> str:
        if not isinstance(value, str) or len(value) not in self.LENGTHS:
            raise self._fail(path, f"expected {self.EXPECTED}")
        try:
            b64decode(value)
        except ValueError as exc:
            raise self._fail(path, str(exc)) from None
        return value

    def dump(self, value: Any) -> object:
        return str(value)

    def _schema(self) -> dict[str, object]:
        forms = "|".join(f"[A-Za-z0-9_-]{{{n}}}" for n in self.LENGTHS)
        return {"type": "string", "pattern": f"^({forms})$"}


class DeliveryAddress(Ident):
    """A member's delivery address (:mod:`messenger.api.delivery_address`): a
    sealed address, or the plain queue ID a leaf from before addresses carries."""

    LENGTHS = (Ident.LENGTH, SEALED_ADDRESS_LENGTH)
    EXPECTED = f"a {SEALED_ADDRESS_LENGTH}-character address or a queue ID"


class Int(Field):
    """An integer in ``minimum..maximum`` (JSON booleans and floats are refused)."""

    def __init__(
        self,
        name: str,
        *,
        minimum: int = 0,
        maximum: int = _U64_MAX,
        optional: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(name, optional=optional, description=description)
        self.minimum = minimum
        self.maximum = maximum

    def parse(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(path, "expected an integer")
        if not self.minimum <= value <= self.maximum:
            raise self._fail(path, f"must be in {self.minimum}..{self.maximum}")
        return value

    def dump(self, value: Any) -> object:
        return int(value)

    def _schema(self) -> dict[str, object]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


class Text(Field):
    """A string of ``min_len..max_len`` characters, optionally matching ``pattern``."""

    def __init__(
        self,
        name: str,
        *,
        min_len: int = 0,
        max_len: int,
        pattern: str | None = None,
        optional: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(name, optional=optional, description=description)
        self.min_len = min_len
        self.max_len = max_len
        self.pattern = re.compile(pattern) if pattern is not None else None

    def parse(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self._fail(path, "expected a string")
        if not self.min_len <= len(value) <= self.max_len:
            raise self._fail(path, f"length must be {self.min_len}..{self.max_len}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise self._fail(path, "has characters that are not allowed")
        return value

    def dump(self, value: Any) -> object:
        return str(value)

    def _schema(self) -> dict[str, object]:
        schema: dict[str, object] = {
            "type": "string",
            "minLength": self.min_len,
            "maxLength": self.max_len,
        }
        if self.pattern is not None:
            schema["pattern"] = f"^{self.pattern.pattern}$"
        return schema


class Choice(Field):
    """One string out of a fixed set."""

    def __init__(
        self,
        name: str,
        choices: Sequence[str],
        *,
        optional: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(name, optional=optional, description=description)
        self.choices = tuple(choices)

    def parse(self, value: object, path: str) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise self._fail(path, f"must be one of {', '.join(self.choices)}")
        return value

    def dump(self, value: Any) -> object:
        return str(value)

    def _schema(self) -> dict[str, object]:
        return {"type": "string", "enum": list(self.choices)}


class Flag(Field):
    """A JSON boolean."""

    def parse(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self._fail(path, "expected true or false")
        return value

    def dump(self, value: Any) -> object:
        return bool(value)

    def _schema(self) -> dict[str, object]:
        return {"type": "boolean"}


class ListOf(Field):
    """A JSON array of ``item`` values (``item``'s name is not used)."""

    def __init__(
        self,
        name: str,
        item: Field,
        *,
        min_items: int = 0,
        max_items: int,
        unique: bool = False,
        optional: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(name, optional=optional, description=description)
        self.item = item
        self.min_items = min_items
        self.max_items = max_items
        self.unique = unique

    def parse(self, value: object, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self._fail(path, "expected an array")
        if not self.min_items <= len(value) <= self.max_items:
            raise self._fail(path, f"must have {self.min_items}..{self.max_items} items")
        items = tuple(self.item.parse(v, f"{path}[{i}]") for i, v in enumerate(value))
        if self.unique and len(set(items)) != len(items):
            raise self._fail(path, "has duplicate items")
        return items

    def dump(self, value: Any) -> object:
        return [self.item.dump(v) for v in value]

    def _schema(self) -> dict[str, object]:
        schema: dict[str, object] = {
            "type": "array",
            "items": self.item.schema(),
            "minItems": self.min_items,
            "maxItems": self.max_items,
        }
        if self.unique:
            schema["uniqueItems"] = True
        return schema


class Nested(Field):
    """A JSON object described by another model."""

    def __init__(
        self,
        name: str,
        model: type[Model],
        *,
        optional: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(name, optional=optional, description=description)
        self.model = model

    def parse(self, value: object, path: str) -> Model:
        return self.model.from_json(value, path=path)

    def dump(self, value: Any) -> object:
        return value.to_json()

    def _schema(self) -> dict[str, object]:
        return {"$ref": f"#/components/schemas/{self.model.__name__}"}
