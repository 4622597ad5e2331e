import pytest

from trunkline.sip.dialog import (
    Dialog,
    DialogError,
    DialogState,
    dialog_id_from_request,
    dialog_id_from_response,
)
from trunkline.sip.message import Headers, SipRequest, SipResponse, Via, build_response

VIA = Via(transport="UDP", host="10.0.0.1", port=5060)


def invite(record_route: list[str] | None = None) -> SipRequest:
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1")
    for rr in record_route or []:
        h.add("Record-Route", rr)
    h.add("From", '"Alice" <sip:alice@a.example>;tag=atag')
    h.add("To", "<sip:bob@b.example>")
    h.add("Call-ID", "cid")
    h.add("CSeq", "10 INVITE")
    h.add("Contact", "<sip:alice@10.0.0.1:5060>")
    return SipRequest("INVITE", "sip:bob@b.example", h)


def answer(req: SipRequest, status: int = 200, rr: list[str] | None = None,
           contact: str = "<sip:bob@192.0.2.9:5070>") -> SipResponse:
    extra = [("Record-Route", r) for r in (rr if rr is not None else req.headers.get_all(
        "Record-Route"))]
    return build_response(req, status, to_tag="btag", headers=[*extra, ("Contact", contact)])


def test_uac_dialog_from_2xx() -> None:
    req = invite(["<sip:p1.example;lr>", "<sip:p2.example;lr>"])
    dialog = Dialog.from_uac(req, answer(req))
    assert dialog.id == ("cid", "atag", "btag") == dialog_id_from_response(answer(req))
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]  # reversed
    assert dialog.remote_target == "sip:bob@192.0.2.9:5070"
    assert dialog.local_seq == 10 and dialog.remote_seq is None
    assert dialog.is_uac and not dialog.secure


def test_uac_dialog_creation_requires_tag_and_contact() -> None:
    req = invite()
    no_tag = build_response(req, 180, headers=[("Contact", "<sip:b@h>")])
    with pytest.raises(DialogError):
        Dialog.from_uac(req, no_tag)
    with pytest.raises(DialogError):
        Dialog.from_uac(req, build_response(req, 180, to_tag="t"))
    with pytest.raises(DialogError):
        Dialog.from_uac(req, answer(req, 486))


def test_early_dialog_confirmed_by_2xx_recomputes_route_set() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 183, rr=["<sip:early;lr>"]))
    assert dialog.state is DialogState.EARLY and dialog.route_set == ["<sip:early;lr>"]
    dialog.receive_response(answer(req, 200, rr=["<sip:a;lr>", "<sip:b;lr>"],
                                   contact="<sip:bob@new>"))
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == ["<sip:b;lr>", "<sip:a;lr>"]
    assert dialog.remote_target == "sip:bob@new"


def test_early_dialog_ended_by_failure() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 180))
    dialog.receive_response(answer(req, 486))
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(DialogError):
        dialog.create_request("BYE", via=VIA)


def test_create_bye_with_loose_routes() -> None:
    req = invite(["<sip:p1.example;lr>", "<sip:p2.example;lr>"])
    dialog = Dialog.from_uac(req, answer(req))
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:bob@192.0.2.9:5070"
    assert bye.headers.get_all("Route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert bye.cseq.seq == 11 and bye.cseq.method == "BYE"
    assert bye.from_addr.tag == "atag" and bye.from_addr.display_name == "Alice"
    assert bye.to_addr.tag == "btag" and bye.to_addr.uri == "sip:bob@b.example"
    assert bye.call_id == "cid"
    assert bye.top_via.branch is not None and bye.top_via.branch.startswith("z9hG4bK")
    assert bye.headers.get("Max-Forwards") == "70"
    assert dialog.create_request("INFO", via=VIA).cseq.seq == 12
    # The wire form is parseable, i.e. a well-formed request.
    from trunkline.sip.message import parse_message
    assert parse_message(bye.to_bytes()).method == "BYE"  # type: ignore[union-attr]


def test_create_request_with_strict_router() -> None:
    req = invite(["<sip:strict.example;maddr=1.2.3.4?h=v>", "<sip:p2.example;lr>"])
    dialog = Dialog.from_uac(req, answer(req))
    # Route set (reversed) starts with p2 (loose); make a dialog whose first hop is strict.
    dialog.route_set = list(reversed(dialog.route_set))
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == "sip:strict.example;maddr=1.2.3.4"
    assert bye.headers.get_all("Route") == ["<sip:p2.example;lr>", "<sip:bob@192.0.2.9:5070>"]


def test_target_refresh_needs_contact_and_no_ack_or_cancel() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req))
    with pytest.raises(DialogError):
        dialog.create_request("INVITE", via=VIA)
    reinvite = dialog.create_request("INVITE", via=VIA, contact="sip:alice@10.0.0.1",
                                     headers=[("Content-Type", "application/sdp")], body=b"v=0")
    assert reinvite.headers.get("Contact") == "<sip:alice@10.0.0.1>"
    assert reinvite.body == b"v=0"
    for method in ("ACK", "CANCEL"):
        with pytest.raises(DialogError):
            dialog.create_request(method, via=VIA)
    ok = build_response(reinvite, 200, headers=[("Contact", "<sip:bob@moved>")])
    dialog.receive_response(ok)
    assert dialog.remote_target == "sip:bob@moved"


def test_ack_for_2xx_reuses_invite_cseq_number() -> None:
    req = invite(["<sip:p1;lr>"])
    dialog = Dialog.from_uac(req, answer(req))
    ack = dialog.create_ack(10, via=VIA, headers=[("Authorization", "Digest x=y")])
    assert ack.method == "ACK" and ack.cseq.seq == 10 and ack.cseq.method == "ACK"
    assert ack.uri == dialog.remote_target
    assert ack.headers.get_all("Route") == ["<sip:p1;lr>"]
    assert ack.headers.get("Authorization") == "Digest x=y"
    assert ack.top_via.branch != req.top_via.branch
    assert dialog.local_seq == 10  # ACK does not consume a CSeq


def test_uas_dialog_and_incoming_cseq_ordering() -> None:
    req = invite(["<sip:p1;lr>", "<sip:p2;lr>"])
    ringing = answer(req, 180)
    dialog = Dialog.from_uas(req, ringing)
    assert dialog.id == ("cid", "btag", "atag")
    assert dialog.state is DialogState.EARLY and not dialog.is_uac
    assert dialog.route_set == ["<sip:p1;lr>", "<sip:p2;lr>"]  # UAS keeps order
    assert dialog.remote_target == "sip:alice@10.0.0.1:5060"
    dialog.sent_response(answer(req, 200))
    assert dialog.state is DialogState.CONFIRMED

    def in_dialog(method: str, seq: int, contact: str | None = None) -> SipRequest:
        h = Headers([("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK9"),
                     ("From", "<sip:alice@a.example>;tag=atag"),
                     ("To", "<sip:bob@b.example>;tag=btag"), ("Call-ID", "cid"),
                     ("CSeq", f"{seq} {method}")])
        if contact:
            h.add("Contact", contact)
        return SipRequest(method, "sip:bob@192.0.2.9", h)

    assert dialog_id_from_request(in_dialog("INFO", 11)) == dialog.id
    assert dialog.receive_request(in_dialog("ACK", 10)) is None
    assert dialog.receive_request(in_dialog("INFO", 11)) is None
    assert dialog.receive_request(in_dialog("INFO", 11)) == 500
    assert dialog.receive_request(in_dialog("INFO", 5)) == 500
    assert dialog.receive_request(in_dialog("UPDATE", 12, "<sip:alice@elsewhere>")) is None
    assert dialog.remote_target == "sip:alice@elsewhere"
    # The UAS's own first request starts a fresh local CSeq space.
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.to_addr.tag == "atag" and bye.from_addr.tag == "btag"
    assert dialog.local_seq == bye.cseq.seq
    assert bye.headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert dialog.receive_request(in_dialog("BYE", 13)) is None
    assert dialog.state is DialogState.TERMINATED


def test_uas_dialog_ended_by_sending_failure() -> None:
    req = invite()
    dialog = Dialog.from_uas(req, answer(req, 180))
    dialog.sent_response(answer(req, 486))
    assert dialog.state is DialogState.TERMINATED


def test_481_and_408_end_the_dialog() -> None:
    req = invite()
    for status in (481, 408):
        dialog = Dialog.from_uac(req, answer(req))
        info = dialog.create_request("INFO", via=VIA)
        dialog.receive_response(build_response(info, status))
        assert dialog.state is DialogState.TERMINATED


def test_secure_flag_requires_sips_and_tls() -> None:
    req = invite()
    req.uri = "sips:bob@b.example"
    assert Dialog.from_uac(req, answer(req), over_tls=True).secure
    assert not Dialog.from_uac(req, answer(req), over_tls=False).secure
