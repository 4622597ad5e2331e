"""Serde envelope primitives and the schema machinery that turns annotated dataclasses into codecs.

A DTO is a dataclass whose field annotations carry their wire type (``I32``, ``U64``, ``Vec[...]``);
:func:`dto` compiles that into one encoder and one decoder per class, so field order and types are
written once, in the class body, exactly as the seed tables list them.
"""

from __future__ import annotations

import dataclasses
import struct
import typing
from enum import IntEnum
from typing import Annotated, Any, Callable, ClassVar, Generic, TypeVar

ENVELOPE_HEADER = struct.Struct("<BBi")
_U8 = struct.Struct("<B")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")


class WireError(ValueError):
    """Bytes that do not decode, or a value that cannot be encoded (ERR_VALIDATION_FAILED)."""


class _Cursor:
    """Reads fields inside one envelope and refuses to move past its end."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: memoryview, pos: int, end: int) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end

    def take(self, n: int, what: str) -> memoryview:
        pos = self.pos
        if n > self.end - pos:
            raise WireError(f"{what}: needs {n} bytes, envelope has {self.end - pos} left")
        self.pos = pos + n
        return self.buf[pos : pos + n]

    def unpack(self, st: struct.Struct, what: str) -> Any:
        pos = self.pos
        if st.size > self.end - pos:
            raise WireError(f"{what}: truncated inside the field")
        self.pos = pos + st.size
        return st.unpack_from(self.buf, pos)[0]


Encoder = Callable[[list, Any], None]
Decoder = Callable[[_Cursor, str], Any]


class WireType:
    """How one field is written and read; ``zero`` is the field's default, which is also what a short
    envelope leaves it as."""

    __slots__ = ("name", "encode", "decode", "zero", "min_size")

    def __init__(self, name: str, encode: Encoder, decode: Decoder, zero: Any, min_size: int) -> None:
        self.name = name
        self.encode = encode
        self.decode = decode
        self.zero = zero
        self.min_size = min_size


def _fixed(name: str, st: struct.Struct, zero: Any) -> WireType:
    def encode(out: list, value: Any) -> None:
        try:
            out.append(st.pack(value))
        except struct.error as exc:
            raise WireError(f"{name} value {value!r} out of range") from exc

    def decode(cur: _Cursor, what: str) -> Any:
        return cur.unpack(st, what)

    return WireType(name, encode, decode, zero, st.size)


def _enc_bytes(out: list, value: bytes) -> None:
    out.append(_I32.pack(len(value)))
    out.append(value)


def _dec_bytes(cur: _Cursor, what: str) -> bytes:
    n = cur.unpack(_I32, what)
    if n < 0:
        raise WireError(f"{what}: negative length {n}")
    return bytes(cur.take(n, what))


def _enc_str(out: list, value: str) -> None:
    _enc_bytes(out, value.encode("utf-8"))


def _dec_str(cur: _Cursor, what: str) -> str:
    raw = _dec_bytes(cur, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"{what}: not UTF-8") from exc


def _enc_bool(out: list, value: bool) -> None:
    out.append(b"\x01" if value else b"\x00")


def _dec_bool(cur: _Cursor, what: str) -> bool:
    return cur.unpack(_U8, what) != 0


STRING = WireType("string", _enc_str, _dec_str, "", 4)
BYTES = WireType("bytes", _enc_bytes, _dec_bytes, b"", 4)
BOOL = WireType("bool", _enc_bool, _dec_bool, False, 1)
INT32 = _fixed("int32", _I32, 0)
UINT32 = _fixed("uint32", _U32, 0)
INT64 = _fixed("int64", _I64, 0)
UINT64 = _fixed("uint64", _U64, 0)
DOUBLE = _fixed("double", _F64, 0.0)

# Annotations used in DTO class bodies: the Python type first, the wire type as metadata.
I32 = Annotated[int, INT32]
U32 = Annotated[int, UINT32]
I64 = Annotated[int, INT64]
U64 = Annotated[int, UINT64]
F64 = Annotated[float, DOUBLE]

def enum_type(cls: type[IntEnum]) -> WireType:
    members = {m.value: m for m in cls}
    first = min(members)

    def encode(out: list, value: Any) -> None:
        INT32.encode(out, int(value))

    def decode(cur: _Cursor, what: str) -> IntEnum:
        raw = cur.unpack(_I32, what)
        try:
            return members[raw]
        except KeyError:
            raise WireError(f"{what}: {raw} is not a {cls.__name__}") from None

    return WireType(cls.__name__, encode, decode, members[first], 4)


class Dto:
    """Base of every DTO: ``VERSION`` is written as ``v``; ``COMPATIBLE`` as ``cv``."""

    __slots__ = ()
    VERSION: ClassVar[int] = 0
    COMPATIBLE: ClassVar[int] = 0
    WIRE: ClassVar[WireType]

    def to_bytes(self) -> bytes:
        out: list = []
        type(self).WIRE.encode(out, self)
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> "Dto":
        """Decode one envelope; bytes after its declared size are ignored (§3)."""
        buf = memoryview(data)
        cur = _Cursor(buf, 0, len(buf))
        return cls.WIRE.decode(cur, cls.__name__)


T = TypeVar("T", bound=Dto)


def _vector_type(elem: WireType) -> WireType:
    def encode(out: list, values: Any) -> None:
        out.append(_U32.pack(len(values)))
        for v in values:
            elem.encode(out, v)

    def decode(cur: _Cursor, what: str) -> list:
        count = cur.unpack(_U32, what)
        # A count the remaining bytes cannot hold is hostile: refuse before allocating.
        if count * elem.min_size > cur.end - cur.pos:
            raise WireError(f"{what}: {count} elements cannot fit in {cur.end - cur.pos} bytes")
        return [elem.decode(cur, what) for _ in range(count)]

    return WireType(f"vector<{elem.name}>", encode, decode, [], 4)


class Vec(Generic[T]):
    """Annotation marker: ``Vec[BucketInfo]`` or ``Vec[str]`` is a serde ``vector<T>``."""

    def __class_getitem__(cls, item: Any) -> Any:
        return Annotated[list, _VecOf(item)]


@dataclasses.dataclass(frozen=True)
class _VecOf:
    item: Any


def _wire_type_of(hint: Any) -> WireType:
    if typing.get_origin(hint) is Annotated:
        _, meta = typing.get_args(hint)[:2]
        if isinstance(meta, WireType):
            return meta
        if isinstance(meta, _VecOf):
            return _vector_type(_wire_type_of(meta.item))
    if hint is str:
        return STRING
    if hint is bytes:
        return BYTES
    if hint is bool:
        return BOOL
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return enum_type(hint)
    if isinstance(hint, type) and issubclass(hint, Dto):
        return hint.WIRE
    raise TypeError(f"no wire type for annotation {hint!r}")


def dto(cls: type[T]) -> type[T]:
    """Make ``cls`` a slotted dataclass and compile its envelope codec from its annotations."""
    hints = typing.get_type_hints(cls, include_extras=True)  # base classes' fields first
    names = [n for n in hints if not n.isupper()]
    wire = [_wire_type_of(hints[n]) for n in names]
    own = cls.__dict__.get("__annotations__", {})
    for name, wt in zip(names, wire):
        if name in own and name not in cls.__dict__:
            zero = wt.zero
            setattr(cls, name, dataclasses.field(default_factory=list) if isinstance(zero, list) else zero)
    cls = dataclasses.dataclass(slots=True)(cls)
    fields = tuple(zip(names, wire))
    qualname = cls.__name__

    def encode(out: list, obj: Any) -> None:
        body: list = []
        for name, wt in fields:
            wt.encode(body, getattr(obj, name))
        payload = b"".join(body)
        out.append(ENVELOPE_HEADER.pack(cls.VERSION, cls.COMPATIBLE, len(payload)))
        out.append(payload)

    def decode(cur: _Cursor, what: str) -> Any:
        if ENVELOPE_HEADER.size > cur.end - cur.pos:
            raise WireError(f"{qualname}: envelope header truncated")
        _, compatible, size = ENVELOPE_HEADER.unpack_from(cur.buf, cur.pos)
        start = cur.pos + ENVELOPE_HEADER.size
        if size < 0 or size > cur.end - start:
            raise WireError(f"{qualname}: envelope size {size} past the end of the data")
        if compatible > cls.VERSION:
            raise WireError(f"{qualname}: producer needs schema v{compatible}, this reader is v{cls.VERSION}")
        inner = _Cursor(cur.buf, start, start + size)
        values = {}
        for name, wt in fields:
            if inner.pos == inner.end:
                break  # short envelope: the rest keep their zero defaults (backward compatibility)
            values[name] = wt.decode(inner, f"{qualname}.{name}")
        cur.pos = start + size  # skip any unknown tail (forward compatibility)
        return cls(**values)

    cls.WIRE = WireType(qualname, encode, decode, None, ENVELOPE_HEADER.size)
    return cls
