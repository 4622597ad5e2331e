"""The parser on the RFC 4475 torture messages: what it accepts, and the status each defect gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.sip.intake import refusal
from trunkline.sip.message import SipParseError, SipRequest, SipResponse, parse_message

DATA = Path(__file__).parent / "data" / "rfc4475"

# Rejected by the parser itself, with the status the endpoint answers (None: a response, dropped).
PARSE_ERRORS: dict[str, int | None] = {
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400, "ltgtruri": 400,
    "lwsruri": 400, "lwsstart": 400, "trws": 400, "badaspec": 400, "baddn": 400, "badvers": 505,
    "mismatch01": 400, "mismatch02": 501, "insuf": 400, "mcl01": 400, "multi01": 400,
    "bigcode": None, "scalarlg": None,
}
# Well formed, but refused by the UAS checks of RFC 3261 §8.2 before their method is looked at.
REFUSED = {"unkscm": 416, "novelsc": 416, "bext01": 420, "escruri": 400, "regbadct": 400,
           "invut": 415, "sdp01": 406}


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


@pytest.mark.parametrize("name", sorted(path.stem for path in DATA.glob("*.dat")))
def test_each_message_parses_or_names_its_answer(name: str) -> None:
    if name in PARSE_ERRORS:
        with pytest.raises(SipParseError) as info:
            parse_message(load(name))
        status = PARSE_ERRORS[name]
        assert info.value.can_respond is (status is not None)
        if status is not None:
            assert info.value.status == status
        return
    message = parse_message(load(name))
    if isinstance(message, SipRequest):
        refused = refusal(message)
        assert (refused.status if refused else None) == REFUSED.get(name)
    else:
        assert name in ("unreason", "noreason", "bcast")


def test_wsinv_is_read_through_its_folding_and_odd_spacing() -> None:
    msg = parse_message(load("wsinv"))
    assert isinstance(msg, SipRequest)
    assert msg.headers.get("Max-Forwards") == "0068" and msg.cseq.seq == 9
    assert [v.host for v in msg.vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert msg.from_addr.display_name == 'J Rosenberg \\"' and msg.from_addr.tag == "98asjd8"
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("Subject") == "" and len(msg.body) == 150


def test_binary_and_escaped_content_survives() -> None:
    intmeth = parse_message(load("intmeth"))
    assert intmeth.to_addr.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    mpart = parse_message(load("mpart01"))
    assert len(mpart.body) == 553 and b"\x00" in mpart.body
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, SipResponse) and unreason.reason.endswith("простое")


def test_extra_bytes_after_a_datagram_are_ignored_and_percent_is_not_an_escape() -> None:
    dblreq = parse_message(load("dblreq"))
    assert isinstance(dblreq, SipRequest) and dblreq.method == "REGISTER" and dblreq.body == b""
    esc02 = parse_message(load("esc02"))
    assert isinstance(esc02, SipRequest) and esc02.method == "RE%47IST%45R"
    assert len(esc02.contacts) == 2
