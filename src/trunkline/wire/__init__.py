"""The TeleQuick wire format as pure code: serde envelopes, every DTO, frames and the method table.

It owns bytes <-> typed objects and nothing else: it never touches a socket, a clock or the call
domain, so it must not import ``rpc``, ``sdk``, ``calls`` or any I/O library. Readers are defensive
(PROTOCOL.md §3): unknown tails are skipped, short envelopes are zero-filled, and nothing is read past
an envelope's end; every malformation surfaces as :class:`WireError`, never another exception.
"""

from trunkline.wire.envelope import WireError
from trunkline.wire.dtos import *  # noqa: F401,F403 - the DTOs are this package's vocabulary
from trunkline.wire.dtos import __all__ as _dto_names
from trunkline.wire.framing import (
    FRAME_LIMIT,
    FrameDecoder,
    FrameError,
    encode_frame,
    parse_request_frame,
    request_frame_ready,
)
from trunkline.wire.methods import METHODS, METHODS_BY_ID, METHODS_BY_NAME, Method

__all__ = [
    "WireError",
    "FRAME_LIMIT",
    "FrameDecoder",
    "FrameError",
    "encode_frame",
    "parse_request_frame",
    "request_frame_ready",
    "METHODS",
    "METHODS_BY_ID",
    "METHODS_BY_NAME",
    "Method",
    *_dto_names,
]
