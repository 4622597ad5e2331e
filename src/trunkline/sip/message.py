"""RFC 3261 message model, parser and serializer.

The parser is the first thing untrusted bytes from a trunk touch, so it is strict about framing and
size and lenient only where real equipment is known to deviate (bare LF line ends, leading CRLF
keepalives). Every malformed input surfaces as :class:`SipParseError`; callers never need a broad
``except`` around it. Header values stay text: structured views (:class:`Via`, :class:`NameAddr`,
:class:`SipUri`, :class:`CSeq`) are parsed on demand so that forwarding a message does not pay for
headers nobody reads.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "CSeq",
    "DEFAULT_LIMITS",
    "Headers",
    "NameAddr",
    "ParserLimits",
    "REASON_PHRASES",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamParser",
    "Via",
    "BRANCH_MAGIC_COOKIE",
    "KNOWN_METHODS",
    "build_rejection",
    "build_response",
    "format_params",
    "generate_branch",
    "generate_call_id",
    "generate_tag",
    "parse_message",
    "parse_params",
    "split_header_list",
]

BRANCH_MAGIC_COOKIE = "z9hG4bK"

KNOWN_METHODS = frozenset((
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK",
    "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
))
"""Methods defined by RFC 3261 and its extensions: any other is unknown (501, not 405)."""

_SINGLE_HEADERS = ("call-id", "cseq", "from", "to", "max-forwards", "content-type")
"""Headers a request may carry once only (RFC 3261 §7.3.1; RFC 4475 multi01)."""


class SipParseError(Exception):
    """A message that cannot be accepted as valid SIP.

    ``partial`` is the message as far as it could be read. For a request it lets the transport
    answer rather than silently drop, which RFC 3261 §8.2 and RFC 4475 prefer; for a response it
    lets the client transaction it belongs to end at once instead of timing out. ``status`` is the
    answer the defect deserves: 400, 505 for another SIP version, 513 when a limit was exceeded,
    413 for a body over the limit, 501 for an unknown method. ``fatal`` means the stream framing
    is lost and a TCP connection must be closed.
    """

    def __init__(self, reason: str, *, partial: SipRequest | SipResponse | None = None,
                 fatal: bool = False, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.fatal = fatal
        self.status = status

    @property
    def can_respond(self) -> bool:
        """True when ``partial`` is a request worth answering: not an ACK, and with a Via.

        The answer copies whatever Via, From, To, Call-ID and CSeq were read (see
        :func:`build_rejection`): a peer that sent a broken message still learns why.
        """
        req = self.partial
        return isinstance(req, SipRequest) and req.method != "ACK" and "Via" in req.headers


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Bounds on untrusted input; a UDP datagram cannot legitimately exceed 64 KiB anyway.

    Exceeding one is answered 513 (413 for a body), never dropped silently.
    """

    max_message_size: int = 65536
    max_header_line: int = 8192
    max_headers: int = 256


DEFAULT_LIMITS = ParserLimits()

_COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
}

_CANONICAL = {
    n.lower(): n
    for n in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
        "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
        "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
        "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization",
        "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy",
        "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
        "Record-Route", "Refer-To", "Referred-By", "Replaces", "Reply-To", "Require",
        "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires", "Subject",
        "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
        "Warning", "WWW-Authenticate",
    )
}

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1), so that one line may carry
# several values. Authorization-style headers and Date are deliberately absent: commas there are
# part of a single value.
_LIST_HEADERS = frozenset(
    (
        "accept", "accept-encoding", "accept-language", "alert-info", "allow", "allow-events",
        "call-info", "contact", "content-encoding", "content-language", "error-info",
        "in-reply-to", "p-asserted-identity", "path", "proxy-require", "reason", "record-route",
        "require", "route", "service-route", "supported", "unsupported", "via", "warning",
    )
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,;?/]+")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,]*")
_HOST_RE = re.compile(r"[A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\]")
_VIA_PROTO_RE = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s;]+)\s*(.*)", re.S)


@functools.lru_cache(maxsize=512)  # header names are a small set; bounded so hostile names cannot grow it
def _key(name: str) -> tuple[str, str]:
    lower = name.lower()
    lower = _COMPACT.get(lower, lower)
    return _CANONICAL.get(lower, name), lower


class Headers:
    """Ordered multi-map of header fields with case-insensitive names.

    Order matters in SIP (Via and Route are processed top-down), so this is a list of pairs rather
    than a dict. Compact names are expanded on insertion so lookups need only the long form.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        canonical, lower = _key(name)
        self._items.append((lower, canonical, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        lower = _key(name)[1]
        for k, _, v in self._items:
            if k == lower:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lower = _key(name)[1]
        return [v for k, _, v in self._items if k == lower]

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, keeping the first one's position."""
        canonical, lower = _key(name)
        out: list[tuple[str, str, str]] = []
        placed = False
        for item in self._items:
            if item[0] == lower:
                if not placed:
                    out.append((lower, canonical, value))
                    placed = True
            else:
                out.append(item)
        if not placed:
            out.append((lower, canonical, value))
        self._items = out

    def remove(self, name: str) -> int:
        lower = _key(name)[1]
        before = len(self._items)
        self._items = [item for item in self._items if item[0] != lower]
        return before - len(self._items)

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        lower = _key(name)[1]
        return any(k == lower for k, _, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((n, v) for _, n, v in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


class _MessageBase:
    """Accessors shared by requests and responses; they raise SipParseError on bad headers."""

    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return _required(self, "Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(_required(self, "CSeq"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(_required(self, "Via"))

    @property
    def from_addr(self) -> NameAddr:
        return NameAddr.parse(_required(self, "From"))

    @property
    def to_addr(self) -> NameAddr:
        return NameAddr.parse(_required(self, "To"))

    @property
    def contacts(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Contact")]

    def _serialize(self, start_line: str) -> bytes:
        parts = [start_line]
        for name, value in self.headers:
            if name == "Content-Length":
                continue
            if "\r" in value or "\n" in value:
                raise ValueError(f"line break in {name} header value")
            parts.append(f"{name}: {value}")
        parts.append(f"Content-Length: {len(self.body)}")
        parts.append("")
        parts.append("")
        return "\r\n".join(parts).encode("utf-8") + self.body


def _required(msg: _MessageBase, name: str) -> str:
    value = msg.headers.get(name)
    if value is None:
        raise SipParseError(f"missing {name} header")
    return value


class SipRequest(_MessageBase):
    """A request; ``uri`` is the Request-URI text, which may be any absolute URI."""

    def __init__(
        self, method: str, uri: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def to_bytes(self) -> bytes:
        """Canonical wire form; Content-Length is always recomputed from the body."""
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")

    def __repr__(self) -> str:
        return f"SipRequest({self.method} {self.uri}, {len(self.headers)} headers, {len(self.body)}B)"


class SipResponse(_MessageBase):
    def __init__(
        self, status: int, reason: str | None = None, headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason if reason is not None else REASON_PHRASES.get(status, "")
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def to_bytes(self) -> bytes:
        """Canonical wire form; Content-Length is always recomputed from the body."""
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"SipResponse({self.status} {self.reason}, {len(self.headers)} headers)"


SipMessage = SipRequest | SipResponse


REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 421: "Extension Required", 422: "Session Interval Too Small",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


# --------------------------------------------------------------------------- small grammars


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on ``sep`` except inside quoted strings and <...> so URIs and display names survive."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    in_quote = False
    in_angle = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == sep and not in_angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quote or in_angle:
        raise SipParseError("unterminated quoted string or angle bracket")
    parts.append(text[start:])
    return parts


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value into its elements (RFC 3261 §7.3.1)."""
    out = [p.strip() for p in _split_outside_quotes(value, ",")]
    return [p for p in out if p]


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` into an ordered dict with lower-cased names.

    Values are kept verbatim (quotes included) so that re-serialising is lossless.
    """
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if not text.startswith(";"):
        raise SipParseError(f"expected ';' before parameters: {text[:40]!r}")
    for part in _split_outside_quotes(text[1:], ";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not _TOKEN_RE.fullmatch(name):
            raise SipParseError(f"bad parameter name {name[:40]!r}")
        params[name.lower()] = value.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5:
        raise SipParseError(f"bad port {text[:10]!r}")
    port = int(text)
    if port > 65535:
        raise SipParseError(f"port out of range: {port}")
    return port


def _parse_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError("junk after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = text.partition(":")
        port_text = port_text_raw if colon else None
    if not _HOST_RE.fullmatch(host):
        raise SipParseError(f"bad host {host[:60]!r}")
    return host, (_parse_port(port_text) if port_text is not None else None)


@dataclass(slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1).

    User and password are kept in their escaped wire form: comparing and re-emitting them never
    needs decoding, and decoding would make round trips lossy.
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.strip().partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips"):
            raise SipParseError(f"not a SIP URI: {text[:60]!r}")
        user = password = None
        if "@" in rest:  # first: a user part may hold "?" and ";" (RFC 4475 intmeth, semiuri)
            userinfo, _, rest = rest.rpartition("@")
            u, pcolon, p = userinfo.partition(":")
            if not _USER_RE.fullmatch(u) or (pcolon and not _PASSWORD_RE.fullmatch(p)):
                raise SipParseError("bad user part in URI")
            user, password = u, (p if pcolon else None)
        rest, qmark, header_text = rest.partition("?")
        hostport, semi, param_text = rest.partition(";")
        host, port = _parse_hostport(hostport)
        params = parse_params(";" + param_text) if semi else {}
        headers: dict[str, str] = {}
        if qmark:
            for item in header_text.split("&"):
                hname, heq, hvalue = item.partition("=")
                if not hname or not heq:
                    raise SipParseError("bad URI header")
                headers[hname] = hvalue
        return cls(host=host, user=user, password=password, port=port, scheme=scheme,
                   params=params, headers=headers)

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def loose_route(self) -> bool:
        return "lr" in self.params

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)


def _unquote(text: str) -> tuple[str, str]:
    """Read a quoted-string at the start of ``text``; return (unescaped content, remainder)."""
    out: list[str] = []
    i = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), text[i + 1 :]
        out.append(ch)
        i += 1
    raise SipParseError("unterminated quoted string")


@dataclass(slots=True)
class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, Refer-To…

    ``uri`` stays text because these headers may carry any absolute URI (tel:, urn:…); use
    :meth:`sip_uri` when a SIP URI is required. ``uri == "*"`` is the wildcard Contact.
    """

    uri: str
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if text == "*":
            return cls(uri="*")
        display: str | None = None
        if text.startswith('"'):
            display, rest = _unquote(text)
            rest = rest.lstrip()
            if not rest.startswith("<"):
                raise SipParseError("display name without <URI>")
        else:
            lt = text.find("<")
            if lt >= 0:
                words = text[:lt].split()
                if not all(_TOKEN_RE.fullmatch(word) for word in words):
                    raise SipParseError(f"unquoted display name {text[:lt].strip()[:40]!r}")
                display = " ".join(words) or None
                rest = text[lt:]
            else:
                rest = ""
        if rest:
            gt = rest.find(">")
            if gt < 0:
                raise SipParseError("unterminated <URI>")
            uri = rest[1:gt]
            if uri != uri.strip():
                raise SipParseError(f"whitespace inside <{uri.strip()[:60]}>")
            param_text = rest[gt + 1 :]
        else:
            # addr-spec form: parameters after the URI belong to the header (RFC 3261 §20.10).
            uri, semi, tail = text.partition(";")
            uri = uri.strip()
            if "?" in uri:
                raise SipParseError("URI with headers outside <>")
            param_text = semi + tail
        scheme, colon, _ = uri.partition(":")
        if not colon or not scheme or not _TOKEN_RE.fullmatch(scheme) or " " in uri:
            raise SipParseError(f"bad URI {uri[:60]!r}")
        return cls(uri=uri, display_name=display, params=parse_params(param_text))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def sip_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    def __str__(self) -> str:
        if self.uri == "*":
            return "*"
        out = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            out = f'"{escaped}" '
        return f"{out}<{self.uri}>{format_params(self.params)}"


@dataclass(slots=True)
class Via:
    """One Via value: where to send responses and which transaction they belong to."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_PROTO_RE.fullmatch(text)
        if m is None:
            raise SipParseError(f"bad Via {text[:60]!r}")
        name, version, transport, rest = m.groups()
        if not (_TOKEN_RE.fullmatch(name) and _TOKEN_RE.fullmatch(version)
                and _TOKEN_RE.fullmatch(transport)):
            raise SipParseError(f"bad Via protocol {text[:60]!r}")
        sent_by, semi, param_text = rest.partition(";")
        # Trailing comment after sent-by (pre-3261 "Via: … (comment)") is not tolerated.
        host, port = _parse_hostport(sent_by)
        params = parse_params(";" + param_text) if semi else {}
        return cls(transport=transport.upper(), host=host, port=port, params=params,
                   protocol=f"{name.upper()}/{version}")

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by the server; None when absent or merely requested."""
        value = self.params.get("rport")
        return int(value) if value and value.isdigit() else None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2:
            raise SipParseError(f"bad CSeq {text[:40]!r}")
        number, method = parts
        if not number.isdigit() or not number.isascii() or len(number) > 10:
            raise SipParseError(f"bad CSeq number {number[:20]!r}")
        seq = int(number)
        if seq >= 2**31:
            raise SipParseError("CSeq number out of range")
        if not _TOKEN_RE.fullmatch(method):
            raise SipParseError(f"bad CSeq method {method[:20]!r}")
        return cls(seq, method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# --------------------------------------------------------------------------- parsing


def _find_head_end(buf: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Locate the blank line; returns (end of head, start of body) or (-1, -1)."""
    crlf = buf.find(b"\r\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 4
    return -1, -1


def _parse_start(start: str) -> tuple[SipRequest | SipResponse, SipParseError | None]:
    """The message a start line opens, and what is wrong with it if anything.

    A request line that is broken but still names a method yields a request anyway, so that the
    headers after it can be read and the sender answered (RFC 4475 ltgtruri, lwsruri, lwsstart,
    trws get 400, badvers 505). Only a line that names no method at all gives up.
    """
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2 or parts[0].upper() != "SIP/2.0":
            raise SipParseError("bad status line")
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not code.isascii() or not "1" <= code[0] <= "6":
            raise SipParseError(f"bad status code {code[:10]!r}")
        return SipResponse(int(code), parts[2] if len(parts) == 3 else ""), None
    parts = start.split(" ")
    method = parts[0]
    if not _TOKEN_RE.fullmatch(method):
        raise SipParseError(f"bad method {method[:20]!r}")
    if len(parts) != 3:
        request = SipRequest(method, " ".join(parts[1:-1]).strip())
        if start.endswith(" "):
            return request, SipParseError("spaces after the SIP version")
        if "" in parts:
            return request, SipParseError("more than one space between request-line elements")
        return request, SipParseError("whitespace inside the Request-URI")
    _, uri, version = parts
    request = SipRequest(method, uri)
    if version.upper() != "SIP/2.0":
        return request, SipParseError(f"version {version[:20]} not supported", status=505)
    scheme, colon, _ = uri.partition(":")
    if not colon or not scheme or not _TOKEN_RE.fullmatch(scheme):
        return request, SipParseError(f"bad Request-URI {uri[:60]!r}")
    return request, None


#: Headers a rejection needs, kept even when a message is over its header limits.
_ESSENTIAL = frozenset(("via", "from", "to", "call-id", "cseq"))


def _parse_head(head: bytes, limits: ParserLimits) -> SipRequest | SipResponse:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header section is not UTF-8") from exc
    if "\x00" in text.replace("\\\x00", ""):
        raise SipParseError("NUL in header section")  # only a quoted-pair may escape one
    lines = text.split("\n")
    start = lines[0].removesuffix("\r")
    if len(start) > limits.max_header_line or "\r" in start:
        raise SipParseError("bad start line")
    msg, error = _parse_start(start)

    # A bad line does not stop the scan: the well-formed headers around it still let the caller
    # answer, so the first error is raised once they are collected.
    raw: list[list[str]] = []
    for line in lines[1:]:
        line = line.removesuffix("\r")
        if len(line) > limits.max_header_line:
            error = error or SipParseError("header line too long", status=513)
            continue
        if not line or "\r" in line:
            error = error or SipParseError("bad header line")
            continue
        if line[0] in " \t":
            if not raw:
                error = error or SipParseError("continuation line before any header")
            else:
                raw[-1].append(line.strip())
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN_RE.fullmatch(name):
            error = error or SipParseError(f"bad header name {name[:40]!r}")
            continue
        raw.append([name, value.strip()])
    if len(raw) > limits.max_headers:
        error = error or SipParseError(f"more than {limits.max_headers} headers", status=513)
        raw = [item for item in raw if _key(item[0])[1] in _ESSENTIAL][: limits.max_headers]

    headers = msg.headers
    for name, *values in raw:
        value = " ".join(v for v in values if v)
        lower = _key(name)[1]
        if lower in _LIST_HEADERS and "," in value:
            try:
                elements = split_header_list(value)
            except SipParseError as exc:
                error = error or exc
                continue
            for element in elements:
                headers.add(name, element)
        else:
            headers.add(name, value)
    if error is None and len(headers) > limits.max_headers:
        error = SipParseError(f"more than {limits.max_headers} headers", status=513)
    if error is not None:
        raise SipParseError(error.reason, partial=msg, status=error.status)
    return msg


def _content_length(msg: SipRequest | SipResponse) -> int | None:
    values = msg.headers.get_all("Content-Length")
    if not values:
        return None
    if len(set(values)) != 1:
        raise SipParseError("conflicting Content-Length headers", partial=msg)
    text = values[0]
    if not text.isdigit() or not text.isascii() or len(text) > 9:
        raise SipParseError(f"bad Content-Length {text[:20]!r}", partial=msg)
    return int(text)


def _validate(msg: SipRequest | SipResponse) -> None:
    """Check what the transaction and dialog layers rely on, so they never meet a parse error."""
    h = msg.headers
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in h:
            raise SipParseError(f"missing {name} header", partial=msg)
    try:
        for via in h.get_all("Via"):
            Via.parse(via)
        cseq = CSeq.parse(h.get("CSeq") or "")
        NameAddr.parse(h.get("From") or "")
        NameAddr.parse(h.get("To") or "")
    except SipParseError as exc:
        raise SipParseError(exc.reason, partial=msg) from None
    if not (h.get("Call-ID") or "").strip():
        raise SipParseError("empty Call-ID", partial=msg)
    if isinstance(msg, SipRequest):
        for name in _SINGLE_HEADERS:
            if len(h.get_all(name)) > 1:
                raise SipParseError(f"more than one {_key(name)[0]} header", partial=msg)
        if cseq.method != msg.method:
            unknown = msg.method not in KNOWN_METHODS
            raise SipParseError("CSeq method does not match request method", partial=msg,
                                status=501 if unknown else 400)


def parse_message(data: bytes, limits: ParserLimits = DEFAULT_LIMITS) -> SipRequest | SipResponse:
    """Parse one datagram (RFC 3261 §18.3: Content-Length optional, excess bytes discarded)."""
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head_end, body_start = _find_head_end(data)
    if head_end < 0:
        # A datagram is a whole message: one that ends without the blank line has no body.
        head_end = body_start = len(data.rstrip(b"\r\n"))
    msg = _parse_head(data[:head_end], limits)
    if len(data) > limits.max_message_size:
        raise SipParseError("message too large", partial=msg, status=513)
    available = len(data) - body_start
    length = _content_length(msg)
    if length is None:
        length = available
    elif length > available:
        raise SipParseError("body shorter than Content-Length", partial=msg)
    msg.body = bytes(data[body_start : body_start + length])
    _validate(msg)
    return msg


def _raw_content_length(head: bytes) -> int | None:
    """Find Content-Length without a full parse, to skip a message whose head is malformed."""
    found: int | None = None
    for line in head.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            if not value.isdigit() or len(value) > 9 or (found is not None and found != int(value)):
                return None
            found = int(value)
    return found


class StreamParser:
    """Incremental parser for stream transports, framed by the mandatory Content-Length.

    After a :class:`SipParseError` whose ``fatal`` is false, the bad message has been skipped and
    parsing may go on; messages that preceded it in the same ``feed`` are returned by the next
    call (``feed(b"")`` collects them). A fatal error means framing is lost: the connection must be
    closed, and every later call raises again.
    """

    def __init__(self, limits: ParserLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._scan = 0
        self._pending: list[SipRequest | SipResponse] = []
        self._head: tuple[SipRequest | SipResponse, int, int] | None = None
        self._broken: SipParseError | None = None
        self._discard = 0

    def feed(self, data: bytes) -> list[SipRequest | SipResponse]:
        if self._broken is not None:
            raise SipParseError(self._broken.reason, fatal=True)
        self._buf += data
        out, self._pending = self._pending, []
        try:
            while (msg := self._next()) is not None:
                out.append(msg)
        except SipParseError as exc:
            self._pending = out
            if exc.fatal:
                self._broken = exc
                self._buf.clear()
            raise
        return out

    def _next(self) -> SipRequest | SipResponse | None:
        buf = self._buf
        limits = self._limits
        if self._discard:
            n = min(len(buf), self._discard)
            del buf[:n]
            self._discard -= n
            if self._discard:
                return None
        if self._head is None:
            skip = 0
            while skip < len(buf) and buf[skip] in (13, 10):
                skip += 1
            if skip:
                del buf[:skip]
                self._scan = 0
            if not buf:
                return None
            head_end, body_start = _find_head_end(buf, max(0, self._scan - 3))
            if head_end < 0:
                if len(buf) > limits.max_message_size:
                    raise SipParseError("header section too large", fatal=True)
                self._scan = len(buf)
                return None
            self._scan = 0
            head = bytes(buf[:head_end])
            if body_start > limits.max_message_size:
                raise SipParseError("message too large", fatal=True)
            try:
                msg = _parse_head(head, limits)
                length = _content_length(msg)
            except SipParseError as exc:
                skip_len = _raw_content_length(head)
                if skip_len is None:
                    raise SipParseError(exc.reason, partial=exc.partial, fatal=True) from None
                if body_start + skip_len > limits.max_message_size:
                    raise SipParseError(exc.reason, partial=exc.partial, fatal=True) from None
                self._discard = body_start + skip_len
                raise
            if length is None:
                raise SipParseError("missing Content-Length on stream", partial=msg,
                                    fatal=True)
            if body_start + length > limits.max_message_size:
                raise SipParseError("body too large", partial=msg, fatal=True, status=413)
            self._head = (msg, body_start, length)
        msg, body_start, length = self._head
        end = body_start + length
        if len(buf) < end:
            return None
        msg.body = bytes(buf[body_start:end])
        del buf[:end]
        self._head = None
        _validate(msg)
        return msg


# --------------------------------------------------------------------------- building


def build_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response per RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq copied in order.

    The To tag is added only when the request had none, since an in-dialog request already names
    the dialog; a 100 Trying also echoes Timestamp (§8.2.6.1).
    """
    h = Headers()
    src = request.headers
    for via in src.get_all("Via"):
        h.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = src.get(name)
        if value is None:
            raise SipParseError(f"cannot respond: request lacks {name}")
        if name == "To" and to_tag is not None and status != 100:
            to = NameAddr.parse(value)
            if to.tag is None:
                to.params["tag"] = to_tag
                value = str(to)
        h.add(name, value)
    if status == 100 and (ts := src.get("Timestamp")) is not None:
        h.add("Timestamp", ts)
    for name, value in headers:
        h.add(name, value)
    return SipResponse(status, reason, h, body)


def build_rejection(request: SipRequest, status: int, reason: str) -> SipResponse:
    """A response to a request too broken for :func:`build_response` (RFC 4475 §3.1.2).

    It copies whatever Via, From, To, Call-ID and CSeq were read, verbatim and in order, and tags
    the To when it can: a sender missing some of them (RFC 4475 insuf) still learns why.
    """
    h = Headers()
    src = request.headers
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in src.get_all(name):
            if name == "To":
                try:
                    to = NameAddr.parse(value)
                    if to.tag is None:
                        to.params["tag"] = generate_tag()
                        value = str(to)
                except SipParseError:
                    pass
            h.add(name, value)
    return SipResponse(status, reason, h)


def generate_branch() -> str:
    """A fresh branch with the RFC 3261 magic cookie, unique per transaction."""
    return BRANCH_MAGIC_COOKIE + secrets.token_hex(10)


def generate_tag() -> str:
    return secrets.token_hex(8)


def generate_call_id(host: str | None = None) -> str:
    value = secrets.token_hex(16)
    return f"{value}@{host}" if host else value
