"""Checks every request passes before its handler: text the store cannot hold is refused
naming the field (PostgreSQL, under FerretDB, stores no NUL character in text)."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from lienthong_kit.errors import FieldViolation, InvalidArgument

__all__ = ["refuse_nul_characters"]

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_SERIALIZE_BELOW = 64 * 1024


def _violations(message: Message, prefix: str) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        entry = field.message_type
        if field.type == _MESSAGE and entry is not None and entry.GetOptions().map_entry:
            items = [(str(k), v) for k, v in value.items()]
            for key, item in items:
                if "\x00" in key or (isinstance(item, str) and "\x00" in item):
                    found.append(FieldViolation(f"{path}[{key!r}]", "holds a NUL character"))
                elif isinstance(item, Message):
                    found += _violations(item, f"{path}[{key!r}].")
            continue
        repeated = field.is_repeated
        values = list(value) if repeated else [value]
        for index, item in enumerate(values):
            where = f"{path}[{index}]" if repeated else path
            if field.type == _STRING and "\x00" in item:
                found.append(FieldViolation(where, "holds a NUL character"))
            elif field.type == _MESSAGE:
                found += _violations(item, f"{where}.")
    return found


def refuse_nul_characters(request: object) -> None:
    """InvalidArgument naming every text field of ``request`` that holds a NUL character."""
    if isinstance(request, Message):
        # a NUL character in any text is a zero byte on the wire: most requests have none, and
        # serializing (in C) costs a twentieth of walking the fields; big messages are walked
        if request.ByteSize() <= _SERIALIZE_BELOW and b"\x00" not in request.SerializeToString():
            return
        found = _violations(request, "")
        if found:
            raise InvalidArgument(found)
