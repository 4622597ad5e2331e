"""SDP (RFC 4566) parsing/serialisation and the offer/answer rules of RFC 3264 for one audio stream.

The model keeps every line it does not interpret, in order, so an SDP we parse and re-serialise
still carries the peer's extra attributes; negotiation reads only what a G.711 gateway acts on:
addresses, ports, codecs, telephone-event, ptime, direction and, for SRTP trunks, the SDES key
(``RTP/SAVP`` with ``a=crypto``, RFC 4568): a side set up for SRTP offers and answers only SRTP, and
one that is not refuses it, so media is never silently sent in clear where encryption was asked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

from trunkline.media.errors import SdpError, SdpNegotiationError
from trunkline.media.srtp import SdesKey, SrtpError, pick_crypto

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_CAPS = {"sendrecv": (True, True), "sendonly": (True, False), "recvonly": (False, True), "inactive": (False, False)}
_FROM_CAPS = {v: k for k, v in _CAPS.items()}
_INVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
_STATIC_PAYLOAD_TYPES = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
PLAIN, SECURE = "RTP/AVP", "RTP/SAVP"
_HOLD_ADDRESSES = ("0.0.0.0", "::")
TELEPHONE_EVENT = "telephone-event"


def invert_direction(direction: str) -> str:
    """The direction an answerer states for an offered one: send and receive swap (RFC 3264 6.1)."""
    return _INVERSE[direction]


def intersect_directions(a: str, b: str) -> str:
    """Strictest of two directions: send only if both allow sending, receive only if both allow it."""
    (sa, ra), (sb, rb) = _CAPS[a], _CAPS[b]
    return _FROM_CAPS[(sa and sb, ra and rb)]


@dataclass(frozen=True, slots=True)
class Origin:
    username: str
    session_id: str
    version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"


@dataclass(frozen=True, slots=True)
class Connection:
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"


@dataclass(frozen=True, slots=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """An m= section. ``extra`` holds its i=/b=/k= lines verbatim as ``(type, value)``."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()
    extra: tuple[tuple[str, str], ...] = ()
    port_count: int | None = None

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value if value is not None else ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [v or "" for k, v in self.attributes if k == name]

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, if any (session level and default are in SessionDescription)."""
        for key, _ in self.attributes:
            if key in _CAPS:
                return key
        return None

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        try:
            return int(float(value)) if value else None
        except ValueError:
            raise SdpError(f"bad a=ptime value {value!r}") from None

    def rtpmaps(self) -> dict[int, RtpMap]:
        maps = {}
        for value in self.attribute_values("rtpmap"):
            try:
                pt_text, spec = value.split(None, 1)
                parts = spec.strip().split("/")
                channels = int(parts[2]) if len(parts) > 2 else None
                maps[int(pt_text)] = RtpMap(int(pt_text), parts[0], int(parts[1]), channels)
            except (ValueError, IndexError):
                raise SdpError(f"bad a=rtpmap value {value!r}") from None
        return maps

    def fmtp(self, payload_type: int) -> str | None:
        prefix = f"{payload_type} "
        for value in self.attribute_values("fmtp"):
            if value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    def codecs(self) -> list[RtpMap]:
        """Formats in offer (preference) order, named by rtpmap or by the static RTP/AVP table."""
        maps = self.rtpmaps()
        out = []
        for fmt in self.formats:
            try:
                pt = int(fmt)
            except ValueError:
                raise SdpError(f"RTP format {fmt!r} is not a payload type number") from None
            if pt in maps:
                out.append(maps[pt])
            elif pt in _STATIC_PAYLOAD_TYPES:
                name, rate = _STATIC_PAYLOAD_TYPES[pt]
                out.append(RtpMap(pt, name, rate))
        return out


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body. ``extra`` keeps other session lines (i=, u=, e=, p=, b=, r=, z=, k=) in order."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: tuple[str, ...] = ("0 0",)
    attributes: tuple[tuple[str, str | None], ...] = ()
    media: tuple[MediaDescription, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        return parse_sdp(text)

    def serialize(self) -> str:
        return serialize_sdp(self)

    def to_bytes(self) -> bytes:
        return serialize_sdp(self).encode("utf-8")

    def __str__(self) -> str:
        return serialize_sdp(self)

    def direction_of(self, media: MediaDescription) -> str:
        """Effective direction of a stream: media level, else session level, else sendrecv."""
        direction = media.direction
        if direction is not None:
            return direction
        for key, _ in self.attributes:
            if key in _CAPS:
                return key
        return "sendrecv"

    def connection_of(self, media: MediaDescription) -> Connection:
        conn = media.connection or self.connection
        if conn is None:
            raise SdpError(f"no c= line for the {media.media} stream")
        return conn

    def with_version(self, version: int) -> SessionDescription:
        return replace(self, origin=replace(self.origin, version=version))


def bump_version(sd: SessionDescription) -> SessionDescription:
    """The same SDP with o= version + 1, as a changed re-offer or re-answer requires (RFC 3264 8)."""
    return sd.with_version(sd.origin.version + 1)


def _attribute(value: str) -> tuple[str, str | None]:
    name, sep, rest = value.partition(":")
    return (name, rest) if sep else (name, None)


def _connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"bad c= line {value!r}")
    return Connection(parts[2], parts[0], parts[1])


@dataclass(slots=True)
class _MediaLines:
    """An m= section while its lines are still being read."""

    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)

    def freeze(self) -> MediaDescription:
        return MediaDescription(
            self.media,
            self.port,
            self.proto,
            self.formats,
            self.connection,
            tuple(self.attributes),
            tuple(self.extra),
            self.port_count,
        )


def parse_sdp(text: str | bytes) -> SessionDescription:
    """Parse an SDP body; raises :class:`SdpError` on anything structurally wrong."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not valid UTF-8") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("SDP must start with v=0")
    origin: Origin | None = None
    session_name = "-"
    connection: Connection | None = None
    timing: list[str] = []
    attributes: list[tuple[str, str | None]] = []
    extra: list[tuple[str, str]] = []
    media: list[_MediaLines] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"bad SDP line {line!r}")
        kind, value = line[0], line[2:].strip()
        if kind == "m":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"bad m= line {value!r}")
            port_text, _, count_text = parts[1].partition("/")
            try:
                port = int(port_text)
                count = int(count_text) if count_text else None
            except ValueError:
                raise SdpError(f"bad port in m= line {value!r}") from None
            if not 0 <= port <= 65535:
                raise SdpError(f"port {port} out of range")
            media.append(_MediaLines(parts[0], port, count, parts[2], tuple(parts[3:])))
            continue
        if media:
            section = media[-1]
            if kind == "c":
                section.connection = _connection(value)
            elif kind == "a":
                section.attributes.append(_attribute(value))
            else:
                section.extra.append((kind, value))
            continue
        if kind == "o":
            parts = value.split()
            if len(parts) != 6:
                raise SdpError(f"bad o= line {value!r}")
            try:
                version = int(parts[2])
            except ValueError:
                raise SdpError(f"bad o= version {parts[2]!r}") from None
            origin = Origin(parts[0], parts[1], version, parts[5], parts[3], parts[4])
        elif kind == "s":
            session_name = value or " "
        elif kind == "c":
            connection = _connection(value)
        elif kind == "t":
            timing.append(value)
        elif kind == "a":
            attributes.append(_attribute(value))
        elif kind == "v":
            raise SdpError("repeated v= line")
        else:
            extra.append((kind, value))
    if origin is None:
        raise SdpError("SDP has no o= line")
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=connection,
        timing=tuple(timing) or ("0 0",),
        attributes=tuple(attributes),
        media=tuple(m.freeze() for m in media),
        extra=tuple(extra),
    )


# RFC 4566 fixes the order of session lines; extras are placed where their type belongs.
_BEFORE_CONNECTION = "iuep"
_BEFORE_TIMING = "b"


def serialize_sdp(sd: SessionDescription) -> str:
    o = sd.origin
    out = ["v=0", f"o={o.username} {o.session_id} {o.version} {o.nettype} {o.addrtype} {o.address}"]
    out.append(f"s={sd.session_name}")
    out.extend(f"{k}={v}" for k, v in sd.extra if k in _BEFORE_CONNECTION)
    if sd.connection is not None:
        c = sd.connection
        out.append(f"c={c.nettype} {c.addrtype} {c.address}")
    out.extend(f"{k}={v}" for k, v in sd.extra if k in _BEFORE_TIMING)
    out.extend(f"t={t}" for t in sd.timing)
    out.extend(f"{k}={v}" for k, v in sd.extra if k not in _BEFORE_CONNECTION + _BEFORE_TIMING)
    out.extend(f"a={k}" if v is None else f"a={k}:{v}" for k, v in sd.attributes)
    for m in sd.media:
        port = f"{m.port}/{m.port_count}" if m.port_count is not None else str(m.port)
        out.append(" ".join(["m=" + m.media, port, m.proto, *m.formats]))
        out.extend(f"{k}={v}" for k, v in m.extra if k == "i")
        if m.connection is not None:
            c = m.connection
            out.append(f"c={c.nettype} {c.addrtype} {c.address}")
        out.extend(f"{k}={v}" for k, v in m.extra if k != "i")
        out.extend(f"a={k}" if v is None else f"a={k}:{v}" for k, v in m.attributes)
    return "\r\n".join(out) + "\r\n"


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The outcome of one offer/answer exchange, from this side's point of view.

    ``remote_direction`` is what the peer declared (with an RFC 2543 hold address treated as "does
    not want to receive"); ``local_direction`` is what we put in our SDP and so what we may do.
    """

    codec: str
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None
    remote_address: str
    remote_port: int
    remote_direction: str
    local_direction: str
    remote_ptime: int | None = None
    remote_crypto: SdesKey | None = None  # the far end's SRTP key: set exactly when SRTP was negotiated

    @property
    def may_send(self) -> bool:
        return _CAPS[self.local_direction][0]

    @property
    def may_receive(self) -> bool:
        return _CAPS[self.local_direction][1]


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _remote_direction(sd: SessionDescription, media: MediaDescription, address: str) -> str:
    direction = sd.direction_of(media)
    if address in _HOLD_ADDRESSES:
        # RFC 2543-style hold: nowhere to send to, so the peer cannot be receiving.
        direction = intersect_directions(direction, "sendonly")
    return direction


def _audio_section(
    port: int,
    codec: RtpMap,
    telephone_event: RtpMap | None,
    direction: str,
    ptime: int,
    crypto: SdesKey | None,
) -> MediaDescription:
    formats = [str(codec.payload_type)]
    attributes: list[tuple[str, str | None]] = [("rtpmap", f"{codec.payload_type} {codec.encoding}/{codec.clock_rate}")]
    if telephone_event is not None:
        formats.append(str(telephone_event.payload_type))
        attributes.append(("rtpmap", f"{telephone_event.payload_type} {TELEPHONE_EVENT}/{telephone_event.clock_rate}"))
        attributes.append(("fmtp", f"{telephone_event.payload_type} 0-15"))
    attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    return _secured(MediaDescription("audio", port, PLAIN, tuple(formats), attributes=tuple(attributes)), crypto)


def _secured(media: MediaDescription, crypto: SdesKey | None) -> MediaDescription:
    """The section as RTP/SAVP with our key when ``crypto`` is given; unchanged otherwise."""
    if crypto is None:
        return media
    return replace(media, proto=SECURE, attributes=media.attributes + (("crypto", crypto.attribute_value()),))


def _remote_crypto(media: MediaDescription, crypto: SdesKey | None) -> SdesKey | None:
    """The peer's key from its section, checked against what this side is set up for."""
    if crypto is None:
        if media.proto == SECURE:
            raise SdpNegotiationError("the far end wants SRTP (RTP/SAVP); this trunk is not set up for it")
        return None
    if media.proto != SECURE:
        raise SdpNegotiationError(f"this trunk requires SRTP; the far end offered {media.proto}")
    try:
        return pick_crypto(media.attribute_values("crypto"))
    except SrtpError as exc:
        raise SdpNegotiationError(str(exc)) from None


def _session(address: str, session_id: str, version: int, media: tuple[MediaDescription, ...]) -> SessionDescription:
    addrtype = _addrtype(address)
    return SessionDescription(
        origin=Origin("trunkline", session_id, version, address, "IN", addrtype),
        session_name="trunkline",
        connection=Connection(address, "IN", addrtype),
        media=media,
    )


def _new_session_id() -> str:
    return str(secrets.randbits(62))


def make_offer(
    address: str,
    port: int,
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    dtmf: bool = True,
    direction: str = "sendrecv",
    *,
    session_id: str | None = None,
    version: int = 0,
    telephone_event_pt: int = 101,
    ptime: int = 20,
    crypto: SdesKey | None = None,
) -> SessionDescription:
    """An initial (or re-) offer for one audio stream listing ``codecs`` in preference order; with
    ``crypto``, as SRTP (RTP/SAVP) carrying that key."""
    if direction not in _CAPS:
        raise SdpError(f"unknown direction {direction!r}")
    formats: list[str] = []
    attributes: list[tuple[str, str | None]] = []
    for name in codecs:
        pt = next((p for p, (n, _) in _STATIC_PAYLOAD_TYPES.items() if n == name.upper()), None)
        if pt is None:
            raise SdpError(f"cannot offer codec {name!r}")
        formats.append(str(pt))
        attributes.append(("rtpmap", f"{pt} {name.upper()}/8000"))
    if dtmf:
        formats.append(str(telephone_event_pt))
        attributes.append(("rtpmap", f"{telephone_event_pt} {TELEPHONE_EVENT}/8000"))
        attributes.append(("fmtp", f"{telephone_event_pt} 0-15"))
    attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    section = _secured(MediaDescription("audio", port, PLAIN, tuple(formats), attributes=tuple(attributes)), crypto)
    return _session(address, session_id or _new_session_id(), version, (section,))


def _pick(
    media: MediaDescription, supported: tuple[str, ...]
) -> tuple[RtpMap, RtpMap | None] | None:
    wanted = {name.upper() for name in supported}
    offered = media.codecs()
    codec = next((c for c in offered if c.encoding.upper() in wanted and c.clock_rate == 8000), None)
    if codec is None:
        return None
    event = next(
        (c for c in offered if c.encoding.lower() == TELEPHONE_EVENT and c.clock_rate == codec.clock_rate), None
    )
    return codec, event


def _as_sdp(sdp: SessionDescription | str | bytes) -> SessionDescription:
    return sdp if isinstance(sdp, SessionDescription) else parse_sdp(sdp)


def answer(
    offer: SessionDescription | str | bytes,
    address: str,
    port: int,
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    *,
    dtmf: bool = True,
    direction: str = "sendrecv",
    session_id: str | None = None,
    version: int = 0,
    ptime: int = 20,
    crypto: SdesKey | None = None,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer (initial or re-offer) per RFC 3264; with ``crypto``, SRTP only (our key in the
    answer carries the tag of the offered line we accepted, RFC 4568 §5.1.2).

    The first audio stream with a codec we support is accepted, using the offerer's preference
    order and payload type numbers; every other stream is rejected with port 0, as section 6 asks
    (the answer must have as many m= lines as the offer). Our direction is the offered one inverted,
    narrowed by ``direction`` (e.g. "sendonly" when we put the call on hold). Raises
    :class:`SdpNegotiationError` when no stream is acceptable.
    """
    if direction not in _CAPS:
        raise SdpError(f"unknown direction {direction!r}")
    sd = _as_sdp(offer)
    sections: list[MediaDescription] = []
    negotiated: NegotiatedMedia | None = None
    offered_names: list[str] = []
    refused: list[str] = []  # audio streams with a codec we take but the wrong security
    for media in sd.media:
        choice = remote_crypto = None
        if negotiated is None and media.media == "audio" and media.port != 0 and media.proto in (PLAIN, SECURE):
            offered_names.extend(c.encoding for c in media.codecs())
            choice = _pick(media, codecs)
            if choice is not None:  # an offer may carry the same audio as SRTP and in clear: take the one we do
                try:
                    remote_crypto = _remote_crypto(media, crypto)
                except SdpNegotiationError as exc:
                    refused.append(str(exc))
                    choice = None
        if choice is None:
            sections.append(MediaDescription(media.media, 0, media.proto, media.formats[:1] or ("0",)))
            continue
        codec, event = choice
        if not dtmf:
            event = None
        local_crypto = replace(crypto, tag=remote_crypto.tag) if crypto and remote_crypto else None
        remote = sd.connection_of(media)
        remote_direction = _remote_direction(sd, media, remote.address)
        local_direction = intersect_directions(invert_direction(remote_direction), direction)
        negotiated = NegotiatedMedia(
            codec=codec.encoding.upper(),
            payload_type=codec.payload_type,
            clock_rate=codec.clock_rate,
            telephone_event_pt=event.payload_type if event is not None else None,
            remote_address=remote.address,
            remote_port=media.port,
            remote_direction=remote_direction,
            local_direction=local_direction,
            remote_ptime=media.ptime,
            remote_crypto=remote_crypto,
        )
        sections.append(_audio_section(port, codec, event, local_direction, ptime, local_crypto))
    if negotiated is None:
        if refused:
            raise SdpNegotiationError(refused[0])
        raise SdpNegotiationError(
            f"no acceptable audio stream: offered {offered_names or 'no RTP audio'}, supported {list(codecs)}"
        )
    return _session(address, session_id or _new_session_id(), version, tuple(sections)), negotiated


def _same_content(a: SessionDescription, b: SessionDescription) -> bool:
    return a.with_version(0) == b.with_version(0)


class SdpSession:
    """Our side of the SDP for one call across its INVITE and re-INVITEs.

    Keeps the o= session id fixed and the version right by RFC 3264 section 8: each SDP we send
    carries the previous version + 1 if anything in it changed, and the same version if not (a
    session refresh). The negotiated result of the latest exchange, including any new remote
    address or port from a re-offer, is in :attr:`negotiated`.
    """

    def __init__(
        self,
        address: str,
        port: int,
        codecs: tuple[str, ...] = ("PCMU", "PCMA"),
        *,
        dtmf: bool = True,
        session_id: str | None = None,
        telephone_event_pt: int = 101,
        ptime: int = 20,
        srtp: bool = False,
    ) -> None:
        self.address = address
        self.port = port
        self.codecs = codecs
        self.dtmf = dtmf
        self.session_id = session_id or _new_session_id()
        self.telephone_event_pt = telephone_event_pt
        self.ptime = ptime
        self.crypto = SdesKey.generate() if srtp else None
        """Our SRTP key for the whole call (re-offers keep it, so the media need not re-key)."""
        self.local: SessionDescription | None = None
        self.negotiated: NegotiatedMedia | None = None
        self._offered_direction = "sendrecv"

    def _commit(self, sd: SessionDescription) -> SessionDescription:
        previous = self.local
        if previous is None:
            version = 0
        elif _same_content(previous, sd):
            version = previous.origin.version
        else:
            version = previous.origin.version + 1
        self.local = sd.with_version(version)
        return self.local

    def create_offer(self, direction: str = "sendrecv") -> SessionDescription:
        """An offer (initial or for a re-INVITE, e.g. "sendonly" to hold), versioned correctly."""
        self._offered_direction = direction
        offer = make_offer(
            self.address,
            self.port,
            self.codecs,
            self.dtmf,
            direction,
            session_id=self.session_id,
            telephone_event_pt=self.telephone_event_pt,
            ptime=self.ptime,
            crypto=self.crypto,
        )
        return self._commit(offer)

    def receive_answer(self, answer_sdp: SessionDescription | str | bytes) -> NegotiatedMedia:
        """Apply the peer's answer to our latest offer."""
        sd = _as_sdp(answer_sdp)
        media = next((m for m in sd.media if m.media == "audio" and m.port != 0), None)
        if media is None:
            raise SdpNegotiationError("the answer rejected the audio stream")
        choice = _pick(media, self.codecs)
        if choice is None:
            raise SdpNegotiationError(f"the answer has none of our codecs {list(self.codecs)}")
        codec, event = choice
        remote_crypto = _remote_crypto(media, self.crypto)
        remote = sd.connection_of(media)
        remote_direction = _remote_direction(sd, media, remote.address)
        self.negotiated = NegotiatedMedia(
            codec=codec.encoding.upper(),
            payload_type=codec.payload_type,
            clock_rate=codec.clock_rate,
            telephone_event_pt=event.payload_type if event is not None and self.dtmf else None,
            remote_address=remote.address,
            remote_port=media.port,
            remote_direction=remote_direction,
            local_direction=intersect_directions(invert_direction(remote_direction), self._offered_direction),
            remote_ptime=media.ptime,
            remote_crypto=remote_crypto,
        )
        return self.negotiated

    def receive_offer(
        self, offer: SessionDescription | str | bytes, direction: str = "sendrecv"
    ) -> tuple[SessionDescription, NegotiatedMedia]:
        """Answer an initial offer or a re-offer; a changed c=/m= shows up in the returned media."""
        sd, self.negotiated = answer(
            offer,
            self.address,
            self.port,
            self.codecs,
            dtmf=self.dtmf,
            direction=direction,
            session_id=self.session_id,
            ptime=self.ptime,
            crypto=self.crypto,
        )
        return self._commit(sd), self.negotiated
