"""The binary PCM16 dialect: raw audio frames both ways, JSON text frames for everything else.

For agents that want linear audio at their own rate without base64 and µ-law in the way. The first
message is one JSON text frame::

    {"event":"start","call_sid":"...","stream_id":"...","from":"...","to":"...","trunk_id":"...",
     "tenant_id":"...","agent_id":"...","sample_rate":16000,"encoding":"pcm16le","channels":1,
     "custom_parameters":{...}}

(``custom_parameters`` holds only the configured parameters; the call metadata is at top level).
After it, every binary frame is mono PCM16 little-endian at ``sample_rate`` (8000, 16000 or
24000): the gateway sends frames of exactly 20 ms, whatever the carrier's packet time; the agent
may send any length, even an odd number of bytes (the stray byte waits for the next frame).
Resampling keeps filter state in both directions so frame boundaries do not click.

Control is JSON text with Twilio's event names where Twilio has them. To the agent:
``{"event":"dtmf","dtmf":{"digit":"5"}}``, ``{"event":"mark","mark":{"name":"..."}}`` (echo),
``{"event":"clear","clear":{"reason":"barge_in"}}`` and ``{"event":"stop","call_sid":"..."}``.
From the agent: ``mark``, ``clear``, ``hangup``, ``transfer`` and ``dtmf`` exactly as in the
Twilio dialect (see :mod:`trunkline.ai.twilio`). No sequence numbers: the WebSocket is ordered and
binary frames have nowhere to carry one.
"""

from __future__ import annotations

from trunkline.ai.events import AgentAudio, AgentClear, AgentEvent, CallInfo
from trunkline.ai.twilio import compact_json, event_name, load_json_object, parse_control
from trunkline.media.g711 import Resampler

SAMPLE_RATES = (8000, 16000, 24000)
BRIDGE_RATE = 8000

_BARGE_IN = '{"event":"clear","clear":{"reason":"barge_in"}}'


class Pcm16Dialect:
    """Binary PCM16 for one call; owns the two resamplers and the odd byte the agent left over."""

    __slots__ = ("info", "custom_parameters", "sample_rate", "_frame_bytes", "_to_agent", "_from_agent", "_odd")

    name = "pcm16"
    audio_codec = None

    def __init__(self, info: CallInfo, custom_parameters: dict[str, str], sample_rate: int = 8000) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"pcm16 sample rate must be one of {SAMPLE_RATES}, not {sample_rate}")
        self.info = info
        self.custom_parameters = dict(custom_parameters)
        self.sample_rate = sample_rate
        self._frame_bytes = 2 * sample_rate // 50
        self._to_agent = Resampler(BRIDGE_RATE, sample_rate)
        self._from_agent = Resampler(sample_rate, BRIDGE_RATE)
        self._odd = b""

    def opening(self) -> list[str | bytes]:
        info = self.info
        start = {
            "event": "start",
            "call_sid": info.call_sid,
            "stream_id": info.stream_id,
            "from": info.call_from,
            "to": info.to,
            "trunk_id": info.trunk_id,
            "tenant_id": info.tenant_id,
            "agent_id": info.agent_id,
            "sample_rate": self.sample_rate,
            "encoding": "pcm16le",
            "channels": 1,
            "custom_parameters": self.custom_parameters,
        }
        return [compact_json(start)]

    def media(self, pcm: bytes) -> bytes:
        """A 20 ms frame at the agent's rate. The resampler's first output is short by its filter delay
        (a sample or two); that frame is padded with silence in front rather than sent short or held
        back, so every frame is 20 ms and none adds latency."""
        out = self._to_agent.process(pcm)
        missing = self._frame_bytes - len(out)
        return out if missing <= 0 else bytes(missing) + out

    def dtmf(self, digit: str) -> str:
        return compact_json({"event": "dtmf", "dtmf": {"digit": digit}})

    def mark_played(self, name: str) -> str:
        return compact_json({"event": "mark", "mark": {"name": name}})

    def barge_in(self) -> str:
        return _BARGE_IN

    def closing(self) -> list[str | bytes]:
        return [compact_json({"event": "stop", "call_sid": self.info.call_sid})]

    def parse(self, message: str | bytes) -> list[AgentEvent]:
        """Binary frames are audio, text frames are control."""
        if isinstance(message, str):
            obj = load_json_object(message)
            events = parse_control(event_name(obj), obj)
            if events and isinstance(events[0], AgentClear):
                # The half sample and the filter history belong to audio that was just dropped.
                self._odd = b""
                self._from_agent.reset()
            return events
        data = self._odd + message if self._odd else message
        if len(data) & 1:
            self._odd = data[-1:]
            data = data[:-1]
        else:
            self._odd = b""
        pcm = self._from_agent.process(data) if data else b""
        return [AgentAudio(pcm)] if pcm else []
