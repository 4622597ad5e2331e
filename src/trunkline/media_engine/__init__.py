"""Media engine: the running media of every call, on one asyncio event loop.

It owns the process-wide 20 ms media clock, the RTP/RTCP port pool and sockets, one
:class:`~trunkline.media_engine.session.MediaSession` per call leg, the audio sources a leg plays
(silence, tones, prompts, an agent's streamed audio, mixes) and the bridges that join two legs.
All protocol and signal logic lives in the sans-I/O :mod:`trunkline.media` core; this package is the
thin edge that feeds it datagrams and clock ticks, so it may import ``trunkline.media`` but must not
import the ``sip``, ``rpc``, ``sdk``, ``cli``, ``calls`` or ``wire`` packages, which build on it.
"""

from trunkline.media_engine.bridge import PREVIOUS, Bridge, BridgeFeed
from trunkline.media_engine.clock import LatenessRecorder, MediaClock, Participant
from trunkline.media_engine.ports import PortLease, PortPoolExhausted, RtpPortPool
from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    AudioSource,
    Mixer,
    Silence,
    StreamQueue,
    Tone,
    WavPlayback,
)

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "AudioSource",
    "PREVIOUS",
    "Bridge",
    "BridgeFeed",
    "LatenessRecorder",
    "MediaClock",
    "MediaSession",
    "Mixer",
    "Participant",
    "PortLease",
    "PortPoolExhausted",
    "RtpPortPool",
    "Silence",
    "StreamQueue",
    "Tone",
    "WavPlayback",
]
