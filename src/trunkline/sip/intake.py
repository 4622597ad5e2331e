"""What a well-formed new request must still pass before a user agent acts on it.

The parser accepts everything RFC 3261's grammar allows; these are the checks RFC 3261 §8.2.1-3
asks a UAS to make next (and RFC 4475 exercises): a Request-URI scheme it can serve, Request-URI
headers, option tags in Require, Contact syntax, and for INVITE a body it can read and an
answer the caller will accept. Each refusal names its defect in the reason phrase.
"""

from __future__ import annotations

from dataclasses import dataclass

from .message import SipParseError, SipRequest, SipUri, split_header_list

__all__ = ["Refusal", "refusal"]

URI_SCHEMES = frozenset(("sip", "sips", "tel"))
"""Request-URI schemes a gateway can route; anything else is 416 (RFC 3261 §8.2.2.1)."""

_SDP = "application/sdp"
_ACCEPTS_SDP = frozenset((_SDP, "application/*", "*/*"))


@dataclass(frozen=True, slots=True)
class Refusal:
    """The final response a request gets instead of being acted on."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def refusal(request: SipRequest, supported: frozenset[str] = frozenset()) -> Refusal | None:
    """The answer ``request`` deserves before its method is looked at, or None to go on.

    ``supported`` lists the option tags the user agent implements; a Require naming any other
    is refused 420 with the unknown ones in Unsupported. ACK and CANCEL are never refused here:
    they answer for an INVITE that already passed.
    """
    if request.method in ("ACK", "CANCEL"):
        return None
    scheme = request.uri.partition(":")[0].lower()
    if scheme not in URI_SCHEMES:
        return Refusal(416, f"Unsupported URI Scheme ({scheme[:30]})")
    if scheme != "tel":
        try:
            uri = SipUri.parse(request.uri)
        except SipParseError as exc:
            return Refusal(400, f"Bad Request (Request-URI: {exc.reason[:60]})")
        if uri.headers:
            return Refusal(400, "Bad Request (headers in the Request-URI)")
    unknown = [tag for value in request.headers.get_all("Require")
               for tag in split_header_list(value) if tag.lower() not in supported]
    if unknown:
        return Refusal(420, "Bad Extension", (("Unsupported", ", ".join(unknown)),))
    try:
        request.contacts
    except SipParseError as exc:
        return Refusal(400, f"Bad Request (Contact: {exc.reason[:60]})")
    if request.method == "INVITE":
        return _invite_refusal(request)
    return None


def _invite_refusal(request: SipRequest) -> Refusal | None:
    """An INVITE's offer must be SDP and its caller must accept SDP in the answer."""
    content_type = (request.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
    if request.body and content_type and content_type != _SDP:
        return Refusal(415, f"Unsupported Media Type ({content_type[:40] or 'none'})",
                       (("Accept", _SDP),))
    accepts = request.headers.get_all("Accept")
    if accepts:
        types = {item.partition(";")[0].strip().lower()
                 for value in accepts for item in split_header_list(value)}
        if not types & _ACCEPTS_SDP:
            return Refusal(406, "Not Acceptable (the answer can only be application/sdp)",
                           (("Warning", '399 - "Accept does not include application/sdp"'),))
    return None
