"""Energy voice-activity detection on the caller's audio, for barge-in over the agent.

Barge-in needs "is the caller talking now?" every 20 ms for hundreds of calls, so this is one
``audioop.rms`` and a few comparisons per frame, not a model. Speech is a frame well above the
line's noise floor; the floor is the quietest frame of the last couple of seconds of real audio
(minimum statistics, in blocks so it costs O(1) per frame). Because the gaps between words are as quiet as
the line, talking does not raise the floor, while a steady new noise (a car, a fan) becomes the
floor within about two seconds. A debounce of ``min_speech_ms`` keeps clicks and pops from
interrupting the agent, and a hangover of ``hangover_ms`` keeps one utterance one utterance across
short pauses.
"""

from __future__ import annotations

import math
from collections import deque

from trunkline.media._audioop import audioop

#: 8 kHz mono PCM16: 16 bytes per millisecond, so frame durations come from their length.
_BYTES_PER_MS = 16
#: Nothing quieter than this is speech, however quiet the line (-50 dBFS).
_MIN_SPEECH_RMS = 32768.0 * 10.0 ** (-50.0 / 20.0)
#: The floor assumed before any block of real audio was measured: a quiet line (-60 dBFS).
_DEFAULT_FLOOR_RMS = 32768.0 * 10.0 ** (-60.0 / 20.0)
_BLOCK_MS = 500
_BLOCKS = 4


class VoiceActivityDetector:
    """Per-call speech detector: feed every caller frame, in order, to :meth:`process`."""

    __slots__ = (
        "threshold_db",
        "hangover_ms",
        "min_speech_ms",
        "_ratio",
        "_blocks",
        "_history_min",
        "_block_min",
        "_block_ms",
        "_run_ms",
        "_gap_ms",
        "_speaking",
        "_heard_silence",
        "_quiet_min",
    )

    def __init__(self, threshold_db: float = 10.0, hangover_ms: int = 200, min_speech_ms: int = 60) -> None:
        """``threshold_db``: how far above the noise floor a frame must be to count as speech."""
        if threshold_db < 0 or hangover_ms < 0 or min_speech_ms < 0:
            raise ValueError("VAD threshold and durations must not be negative")
        self.threshold_db = threshold_db
        self.hangover_ms = hangover_ms
        self.min_speech_ms = min_speech_ms
        self._ratio = 10.0 ** (threshold_db / 20.0)
        self._blocks: deque[float] = deque(maxlen=_BLOCKS)
        self.reset()

    @property
    def noise_floor(self) -> float:
        """The current floor as an RMS value (``inf`` before the first frame)."""
        return min(self._history_min, self._block_min)

    def reset(self) -> None:
        """Forget the floor and any speech in progress, e.g. when the caller's audio source changes."""
        self._blocks.clear()
        self._history_min = math.inf
        self._block_min = math.inf
        self._block_ms = 0
        self._run_ms = 0
        self._gap_ms = 0
        self._speaking = False
        self._heard_silence = False
        self._quiet_min = math.inf

    def process(self, pcm: bytes) -> bool:
        """Account one frame (20 ms expected; any whole number of samples works); True while speech."""
        rms = audioop.rms(pcm, 2)
        ms = len(pcm) // _BYTES_PER_MS
        # Judge against completed blocks and the current block's non-speech frames, so a sound that
        # just started is not its own floor. With nothing learned yet, a line that has been digitally silent (PCMU
        # 0xFF decodes to zero) is a quiet line, so a caller who starts talking out of silence is
        # heard at once; a line whose first audio is noise learns its floor before anything counts.
        floor = self._history_min if self._history_min < self._quiet_min else self._quiet_min
        if floor == math.inf and self._heard_silence:
            floor = _DEFAULT_FLOOR_RMS
        speechy = rms >= _MIN_SPEECH_RMS and rms > floor * self._ratio
        if rms and not speechy and rms < self._quiet_min:
            self._quiet_min = rms

        # Exact digital zero is not the line: it is a lost packet or a trunk's silence suppression
        # standing in for it. Letting it in would drop the floor to nothing and make the line's
        # ordinary noise look like speech for seconds afterwards, so the floor just holds.
        if not rms:
            self._heard_silence = True
        else:
            if rms < self._block_min:
                self._block_min = rms
            self._block_ms += ms
            if self._block_ms >= _BLOCK_MS:
                self._blocks.append(self._block_min)
                self._history_min = min(self._blocks)
                self._block_min = math.inf
                self._quiet_min = math.inf
                self._block_ms = 0

        if speechy:
            self._gap_ms = 0
            self._run_ms += ms
            if not self._speaking and self._run_ms >= self.min_speech_ms:
                self._speaking = True
        else:
            self._run_ms = 0
            if self._speaking:
                self._gap_ms += ms
                if self._gap_ms > self.hangover_ms:
                    self._speaking = False
        return self._speaking
