"""One call's audio bridged both ways to its agent, driven by the media clock.

Caller audio goes to the agent frame by frame as its packets arrive (the session delivers on
arrival, in sequence; the clock only fills gaps), always in 20 ms frames whatever the carrier's
packet time (:mod:`trunkline.ai.framing`), in the link's ``audio_codec``: for a µ-law agent
on a µ-law call the RTP payload bytes go to the agent as they are and back the same way, with no
PCM16 on the path at all (only the VAD decodes, when barge-in is on). Agent audio goes through one bounded
:class:`StreamQueue` that the session plays on the clock, so it is paced at 20 ms and never bursts
to the carrier; overflow drops the oldest audio. ``clear`` empties the queue and puts silence on
the wire at once.

Agent audio is deliberately not sent on arrival, even into an empty queue, though that would save
up to a frame: measured with bench/ai.py, carrier and agent then drive each other's timing through
the gateway instead of its clock, the per-call work stops being phase-locked to the tick, and at
200 calls the clock ran 20 ms late at p99 and queues gained a frame at every late tick (a queue
fed and drained at the same rate never gives it back). The one exception is a frame that misses
its tick while the agent is mid-stream: the queue is played as a live source, so that tick held its
slot, and the frame goes out on arrival, a few milliseconds late, instead of a frame late for the
rest of the agent's turn. With ``auto_barge_in`` a VAD watches the caller while
the agent talks and clears the queue after ``barge_in_patience_ms`` of speech; with it off there is
no VAD cost at all.
"""

from __future__ import annotations

import logging
from typing import Callable

from trunkline.ai.events import AgentAudio, AgentClear, AgentDtmf, AgentEvent, AgentHangup, AgentMark, AgentTransfer
from trunkline.ai.framing import FrameCutter
from trunkline.ai.link import AgentLink
from trunkline.ai.vad import VoiceActivityDetector
from trunkline.media_engine.session import MediaSession
from trunkline.media_engine.sources import StreamQueue

log = logging.getLogger(__name__)

FRAME_MS = 20
FRAME_SAMPLES = 160
#: Agent audio buffered ahead of the caller, at most (frames of 20 ms): 60 s.
QUEUE_FRAMES = 3000


class AgentBridge:
    def __init__(
        self,
        media: MediaSession,
        link: AgentLink,
        *,
        auto_barge_in: bool = False,
        barge_in_patience_ms: int = 0,
        on_hangup: Callable[[], None],
        on_transfer: Callable[[str], None],
        on_closed: Callable[[str], None],
    ) -> None:
        self.media = media
        self.link = link
        codec = link.audio_codec
        self.queue = StreamQueue(QUEUE_FRAMES, on_mark=link.mark_played, codec=codec, live=True)
        self._silent_frame = codec.silence(FRAME_SAMPLES) if codec is not None else bytes(2 * FRAME_SAMPLES)
        self._cutter = FrameCutter(len(self._silent_frame))
        self._vad_decode = codec.decode if codec is not None else None
        self.vad = VoiceActivityDetector() if auto_barge_in else None
        self.patience_ms = max(0, barge_in_patience_ms)
        self.barge_ins = 0
        self._speech_ms = 0
        self._on_hangup = on_hangup
        self._on_transfer = on_transfer
        self._on_closed = on_closed
        self._poll_clock = media.clock.poll
        self._active = False

    def start(self) -> None:
        self._active = True
        self.link.on_event = self._on_agent_event
        self.link.on_closed = self._on_link_closed
        self.media.on_audio = self._on_caller_audio
        self.media.consumer_codec = self.link.audio_codec
        self.media.deliver_on_arrival = True
        self.media.play(self.queue)

    def stop(self) -> None:
        """The call left the AI app or ended: detach from the media and say goodbye to the agent."""
        if not self._active:
            return
        self._active = False
        if self.media.on_audio == self._on_caller_audio:
            self.media.on_audio = None
        self.media.consumer_codec = None
        self.media.deliver_on_arrival = False
        if self.media.source is self.queue:
            self.media.play(None)
        self.link.on_event = None
        self.link.on_closed = None
        self.link.close()

    # --- caller -> agent (every frame) --------------------------------------------------------

    def _on_caller_audio(self, payload: bytes | None) -> None:
        """One packet's payload (None: a lost or missing packet, 20 ms of silence), as 20 ms frames.

        A 20 ms payload with nothing pending, the usual case, is passed on as the very bytes object
        it is; only other packet times go through the :class:`FrameCutter`."""
        if payload is None:
            payload = self._silent_frame
        cutter = self._cutter
        if len(payload) != cutter.frame_bytes or cutter.pending:
            for frame in cutter.cut(payload):
                self._on_caller_frame(frame)
        else:
            self._on_caller_frame(payload)

    def _on_caller_frame(self, frame: bytes) -> None:
        self.link.send_audio(frame)
        vad = self.vad
        if vad is None:
            return
        decode = self._vad_decode
        if vad.process(frame if decode is None else decode(frame)) and self.queue.queued_frames:
            self._speech_ms += FRAME_MS
            if self._speech_ms >= self.patience_ms:
                self._barge_in()
        else:
            self._speech_ms = 0

    def _barge_in(self) -> None:
        self._speech_ms = 0
        self.barge_ins += 1
        self._clear()
        self.link.barge_in()

    def _clear(self) -> None:
        """Empty the queue and put the silence on the wire now, not at the next tick; marks that can no
        longer be reached are echoed at once, as Twilio does."""
        for name in self.queue.clear():
            self.link.mark_played(name)
        self.media.send_next_frame_now()

    # --- agent -> caller ----------------------------------------------------------------------

    def _on_agent_event(self, event: AgentEvent) -> None:
        self._poll_clock()  # a tick due while the loop reads agent messages runs now, not after them
        if isinstance(event, AgentAudio):
            queue = self.queue
            queue.push(event.audio)
            media = self.media
            if media.frame_held and queue.queued_frames:
                media.send_late_frame()
        elif isinstance(event, AgentMark):
            self.queue.push_mark(event.name)
        elif isinstance(event, AgentClear):
            self._clear()
        elif isinstance(event, AgentDtmf):
            self.media.send_dtmf(event.digits)
        elif isinstance(event, AgentHangup):
            self._on_hangup()
        elif isinstance(event, AgentTransfer):
            self._on_transfer(event.to)

    def _on_link_closed(self, reason: str) -> None:
        if self._active:
            self._active = False
            self._on_closed(reason)
