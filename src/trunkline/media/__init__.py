"""Media: RTP/RTCP, codecs, jitter buffering, call-quality statistics, DTMF and SDP as pure code.

Everything here is sans-I/O: objects take bytes plus a time the caller supplies (a float ``now`` or
RTP timestamps) and return bytes or results, so one asyncio media clock can drive thousands of calls
and tests can replay exact timings. This package must not import asyncio, sockets, or the ``sip``,
``rpc``, ``sdk``, ``cli`` or ``calls`` packages; they depend on it, never the reverse.
"""

from trunkline.media.errors import (
    MediaError,
    RtcpError,
    RtpError,
    SdpError,
    SdpNegotiationError,
    WavError,
)

__all__ = [
    "MediaError",
    "RtcpError",
    "RtpError",
    "SdpError",
    "SdpNegotiationError",
    "WavError",
]
