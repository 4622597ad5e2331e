"""The Twilio Media Streams dialect, message-compatible so existing Twilio bots work unchanged.

To the agent, exactly Twilio's shapes (compact JSON, keys in Twilio's order):

- ``{"event":"connected","protocol":"Call","version":"1.0.0"}`` once, then
- ``start`` (``sequenceNumber`` "1") with ``accountSid`` (the tenant), ``streamSid``, ``callSid``,
  ``tracks: ["inbound"]``, ``customParameters`` and ``mediaFormat`` (audio/x-mulaw, 8000, 1);
- ``media`` per 20 ms caller frame: ``track`` "inbound", ``chunk`` counting from "1",
  ``timestamp`` in ms of caller audio sent before this chunk (the media clock, not wall time, so
  the codec needs no clock and the numbers stay exact under jitter), base64 µ-law ``payload``;
- ``dtmf`` (``track`` "inbound_track", one ``digit``), ``mark`` echoes, and ``stop`` at the end.

Every message after ``connected`` carries ``streamSid`` and a ``sequenceNumber`` string that counts
up by one across all of them, as Twilio's do. ``customParameters`` holds the call's metadata
(``call_sid``, ``from``, ``to``, ``from_number``, ``to_number``, ``trunk_id``, ``tenant_id``,
``agent_id``) merged with the configured parameters; the metadata wins on a name clash, so the
agent can trust it. The numbers are there twice because Twilio's ``start`` has no field for them:
Pipecat's runner (``parse_telephony_websocket``) fills ``CallData.from_number`` / ``to_number``
from the TwiML stream parameters ``from_number`` / ``to_number``, while other bots read ``from`` /
``to``.

From the agent, Twilio's ``media`` (base64 µ-law of any length), ``mark`` and ``clear``, plus these
Trunkline extensions, which Twilio itself does not have:

- ``{"event":"hangup"}`` ends the call;
- ``{"event":"transfer","transfer":{"to":"sip:..."}}`` (or an E.164 number) transfers it blind with
  SIP REFER: the agent stays connected until the far end reports the new call answered, then gets
  ``stop``; a refused or failed transfer leaves the call with the agent (the gateway log says why);
- ``{"event":"dtmf","dtmf":{"digits":"123#"}}`` plays digits into the call (0-9, *, #, A-D).

``streamSid`` and ``sequenceNumber`` on agent messages are not checked: one connection carries
one call, and bots differ in whether they send them. A ``connected`` message from the agent (some
bots echo it as a greeting) is ignored; any other event is an :class:`AgentProtocolError`, which
the bridge logs and drops, so a typo shows up in the logs instead of vanishing.

Also a Trunkline extension, to the agent: when the gateway's VAD detects the caller talking over
the agent it clears the agent's queued audio itself and sends
``{"event":"clear","sequenceNumber":"n","streamSid":"...","clear":{"reason":"barge_in"}}`` so the
agent can stop generating; bots that do not know it ignore an unknown event.

The helpers :func:`load_json_object`, :func:`event_name`, :func:`parse_control` and
:func:`compact_json` are shared with the binary PCM dialect, whose control messages use the same
vocabulary.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from trunkline.ai.events import (
    AgentAudio,
    AgentClear,
    AgentDtmf,
    AgentEvent,
    AgentHangup,
    AgentMark,
    AgentProtocolError,
    AgentTransfer,
    CallInfo,
)
from trunkline.media.g711 import PCMU

SAMPLE_RATE = 8000
_BYTES_PER_MS = SAMPLE_RATE // 1000  # µ-law: a byte a sample
_DTMF_DIGITS = frozenset("0123456789*#ABCD")
#: Agent events that are valid Twilio vocabulary but mean nothing coming from the agent.
_IGNORED = frozenset({"connected"})
#: Compact JSON, as Twilio sends it; one shared encoder instead of one per json.dumps call.
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def call_parameters(info: CallInfo, custom_parameters: dict[str, str]) -> dict[str, str]:
    """Configured parameters overlaid with the call's metadata (which wins, so it can be trusted)."""
    return {
        **custom_parameters,
        "call_sid": info.call_sid,
        "from": info.call_from,
        "to": info.to,
        "from_number": info.call_from,
        "to_number": info.to,
        "trunk_id": info.trunk_id,
        "tenant_id": info.tenant_id,
        "agent_id": info.agent_id,
    }


#: The C scanner behind json.loads, called directly for the usual message: json.loads' Python layers
#: (type checks, two whitespace regexes, the end check) cost more than the scan of a media message.
_scan_json = json.JSONDecoder().scan_once


def load_json_object(message: str | bytes) -> dict[str, Any]:
    """Decode one JSON object message, turning every way that can fail into AgentProtocolError."""
    if type(message) is str:
        try:
            obj, end = _scan_json(message, 0)
        except (StopIteration, ValueError, RecursionError):
            pass  # surrounding whitespace, or not JSON: json.loads below accepts the one, names the other
        else:
            if end == len(message) and type(obj) is dict:
                return obj
    try:
        obj = json.loads(message)
    except (ValueError, RecursionError):  # bad JSON or UTF-8 are ValueErrors; deep nesting recurses
        raise AgentProtocolError("bad JSON") from None
    if not isinstance(obj, dict):
        raise AgentProtocolError("not a JSON object")
    return obj


def _field(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise AgentProtocolError(f"{key}: missing or not an object")
    return value


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise AgentProtocolError(f"{where}.{key}: missing or not a string")
    return value


def event_name(message: dict[str, Any]) -> str:
    """The message's ``event`` discriminator, which every message of both dialects must have."""
    event = message.get("event")
    if not isinstance(event, str):
        raise AgentProtocolError("event: missing or not a string")
    return event


def parse_control(event: str, message: dict[str, Any]) -> list[AgentEvent]:
    """The control events both dialects share: mark, clear, hangup, transfer, dtmf (and ignored ones)."""
    if event == "mark":
        return [AgentMark(_string(_field(message, "mark"), "name", "mark"))]
    if event == "clear":
        return [AgentClear()]
    if event == "hangup":
        return [AgentHangup()]
    if event == "transfer":
        to = _string(_field(message, "transfer"), "to", "transfer")
        if not to:
            raise AgentProtocolError("transfer.to: empty")
        return [AgentTransfer(to)]
    if event == "dtmf":
        digits = _string(_field(message, "dtmf"), "digits", "dtmf").upper()
        if not digits or not _DTMF_DIGITS.issuperset(digits):
            raise AgentProtocolError("dtmf.digits: not DTMF digits")
        return [AgentDtmf(digits)]
    if event in _IGNORED:
        return []
    raise AgentProtocolError(f"unknown event {event[:32]!r}")


class TwilioDialect:
    """Twilio Media Streams for one call: keeps the sequence number and the media chunk counter."""

    __slots__ = ("info", "custom_parameters", "_seq", "_chunk", "_sent_bytes", "_sid", "_media_format")

    name = "twilio"
    sample_rate = SAMPLE_RATE
    audio_codec = PCMU  # the stream's own encoding: frames cross the bridge as µ-law, untouched

    def __init__(self, info: CallInfo, custom_parameters: dict[str, str]) -> None:
        self.info = info
        self.custom_parameters = call_parameters(info, custom_parameters)
        self._seq = 0
        self._chunk = 0
        self._sent_bytes = 0
        self._sid = info.stream_id
        # The hot path: one %-format per frame instead of building and serialising a dict. The
        # stream id is JSON-escaped once and its '%' doubled so it cannot disturb the format.
        sid_json = compact_json(info.stream_id).replace("%", "%%")
        self._media_format = (
            '{"event":"media","sequenceNumber":"%d","media":{"track":"inbound","chunk":"%d",'
            '"timestamp":"%d","payload":"%s"},"streamSid":' + sid_json + "}"
        )

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def opening(self) -> list[str | bytes]:
        info = self.info
        start = {
            "event": "start",
            "sequenceNumber": self._next_seq(),
            "start": {
                "accountSid": info.tenant_id,
                "streamSid": self._sid,
                "callSid": info.call_sid,
                "tracks": ["inbound"],
                "customParameters": self.custom_parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": SAMPLE_RATE, "channels": 1},
            },
            "streamSid": self._sid,
        }
        return ['{"event":"connected","protocol":"Call","version":"1.0.0"}', compact_json(start)]

    def media(self, ulaw: bytes) -> str:
        self._seq += 1
        self._chunk += 1
        timestamp = self._sent_bytes // _BYTES_PER_MS
        self._sent_bytes += len(ulaw)
        payload = binascii.b2a_base64(ulaw, newline=False).decode("ascii")
        return self._media_format % (self._seq, self._chunk, timestamp, payload)

    def dtmf(self, digit: str) -> str:
        return compact_json(
            {
                "event": "dtmf",
                "streamSid": self._sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark_played(self, name: str) -> str:
        return compact_json(
            {"event": "mark", "sequenceNumber": self._next_seq(), "streamSid": self._sid, "mark": {"name": name}}
        )

    def barge_in(self) -> str:
        return compact_json(
            {
                "event": "clear",
                "sequenceNumber": self._next_seq(),
                "streamSid": self._sid,
                "clear": {"reason": "barge_in"},
            }
        )

    def closing(self) -> list[str | bytes]:
        info = self.info
        stop = {
            "event": "stop",
            "sequenceNumber": self._next_seq(),
            "streamSid": self._sid,
            "stop": {"accountSid": info.tenant_id, "callSid": info.call_sid},
        }
        return [compact_json(stop)]

    def parse(self, message: str | bytes) -> list[AgentEvent]:
        """Text frames normally; a binary frame holding the same JSON is accepted too."""
        obj = load_json_object(message)
        media = obj.get("media")
        # One media message per 20 ms per call: its well-formed shape is checked inline; anything
        # else takes the general path, which names what is wrong.
        if obj.get("event") == "media" and type(media) is dict and type(media.get("payload")) is str:
            payload = media["payload"]
        else:
            event = event_name(obj)
            if event != "media":
                return parse_control(event, obj)
            payload = _string(_field(obj, "media"), "payload", "media")
        try:
            ulaw = binascii.a2b_base64(payload, strict_mode=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise AgentProtocolError("media.payload: bad base64") from None
        return [AgentAudio(ulaw)] if ulaw else []
