"""Exceptions of the media core.

Every error derives from ``MediaError`` (itself a ``ValueError``) so a transport loop can drop one bad
datagram or reject one bad SDP body with a single ``except`` without masking programming errors.
"""


class MediaError(ValueError):
    """Malformed or unusable media input: a packet, payload, SDP body or audio file."""


class RtpError(MediaError):
    """An RTP packet that cannot be parsed."""


class RtcpError(MediaError):
    """An RTCP packet that cannot be parsed."""


class SdpError(MediaError):
    """An SDP body that is not well formed."""


class SdpNegotiationError(SdpError):
    """A well-formed offer or answer with nothing this side can accept (e.g. no common codec)."""


class WavError(MediaError):
    """A WAV file that is corrupt or not integer PCM."""
