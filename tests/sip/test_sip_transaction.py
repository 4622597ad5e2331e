import pytest

from trunkline.sip.message import Headers, SipRequest, SipResponse, build_response
from trunkline.sip.transaction import (
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Terminated,
    TimerConfig,
    TransactionError,
    TransactionState,
    TransactionTable,
    TransactionTimeout,
    Transmit,
    TransportError,
    TwoXXRetransmitter,
    build_ack_for_non2xx,
    build_cancel,
)

T1 = 0.5


def request(method: str = "INVITE", branch: str = "z9hG4bKabc", seq: int = 1,
            sent_by: str = "10.0.0.1:5060") -> SipRequest:
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP {sent_by};branch={branch}")
    h.add("Route", "<sip:proxy.example.com;lr>")
    h.add("Max-Forwards", "70")
    h.add("From", "<sip:alice@a.example>;tag=ft")
    h.add("To", "<sip:bob@b.example>")
    h.add("Call-ID", "call-1")
    h.add("CSeq", f"{seq} {method}")
    return SipRequest(method, "sip:bob@b.example", h)


def response(req: SipRequest, status: int, to_tag: str = "tt") -> SipResponse:
    return build_response(req, status, to_tag=to_tag)


def retransmit_times(txn: InviteClientTransaction | NonInviteClientTransaction
                     | InviteServerTransaction | TwoXXRetransmitter, until: float) -> list[float]:
    """Drive the timers by jumping to each deadline; collect when Transmit actions happen."""
    times = []
    while (deadline := txn.next_timer()) is not None and deadline <= until:
        for action in txn.handle_timer(deadline):
            if isinstance(action, Transmit):
                times.append(deadline)
    return times


def intervals(times: list[float], start: float = 0.0) -> list[float]:
    points = [start, *times]
    return [round(b - a, 6) for a, b in zip(points, points[1:])]


# --------------------------------------------------------------------------- INVITE client


def test_invite_client_timer_a_doubles_without_cap_and_b_times_out() -> None:
    txn = InviteClientTransaction(request(), reliable=False)
    assert txn.start(0.0) == [Transmit(txn.request)]
    times = retransmit_times(txn, 31.9)
    assert intervals(times) == [0.5, 1, 2, 4, 8, 16]
    assert txn.next_timer() == 32.0
    assert txn.handle_timer(32.0) == [TransactionTimeout("B"), Terminated()]
    assert txn.terminated and txn.next_timer() is None


def test_invite_client_reliable_has_no_retransmissions() -> None:
    txn = InviteClientTransaction(request(), reliable=True)
    txn.start(10.0)
    assert txn.next_timer() == 10.0 + 64 * T1
    assert txn.handle_timer(41.9) == []
    assert txn.handle_timer(42.0) == [TransactionTimeout("B"), Terminated()]


def test_invite_client_provisional_stops_retransmission_and_timeout() -> None:
    txn = InviteClientTransaction(request(), reliable=False)
    txn.start(0.0)
    ringing = response(txn.request, 180)
    assert txn.receive(ringing, 0.2) == [Deliver(ringing)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.next_timer() is None  # Timer B only runs in Calling


def test_invite_client_non2xx_generates_ack_and_absorbs_retransmissions() -> None:
    txn = InviteClientTransaction(request(), reliable=False)
    txn.start(0.0)
    busy = response(txn.request, 486)
    actions = txn.receive(busy, 1.0)
    assert isinstance(actions[0], Transmit) and actions[1] == Deliver(busy)
    ack = actions[0].message
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.cseq.seq == 1 and ack.cseq.method == "ACK"
    assert ack.top_via.branch == "z9hG4bKabc" and len(ack.headers.get_all("Via")) == 1
    assert ack.to_addr.tag == "tt"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]
    assert txn.state is TransactionState.COMPLETED
    assert txn.receive(busy, 2.0) == [Transmit(ack)]  # retransmitted final: ACK again, no Deliver
    assert txn.next_timer() == 33.0  # Timer D = 32 s
    assert txn.handle_timer(33.0) == [Terminated()]


def test_invite_client_non2xx_over_reliable_terminates_at_once() -> None:
    txn = InviteClientTransaction(request(), reliable=True)
    txn.start(0.0)
    actions = txn.receive(response(txn.request, 603), 1.0)
    assert [type(a) for a in actions] == [Transmit, Deliver, Terminated]


def test_invite_client_2xx_enters_accepted_and_passes_retransmissions() -> None:
    txn = InviteClientTransaction(request(), reliable=False)
    txn.start(0.0)
    ok = response(txn.request, 200)
    assert txn.receive(ok, 1.0) == [Deliver(ok)]
    assert txn.state is TransactionState.ACCEPTED
    assert txn.receive(ok, 1.5) == [Deliver(ok)]  # TU must ACK every 2xx
    assert txn.receive(response(txn.request, 180), 1.6) == []
    assert txn.next_timer() == 1.0 + 64 * T1  # Timer M
    assert txn.handle_timer(33.0) == [Terminated()]


def test_invite_client_transport_error() -> None:
    txn = InviteClientTransaction(request(), reliable=False)
    txn.start(0.0)
    assert txn.transport_error(0.1, "refused") == [TransportError("refused"), Terminated()]
    assert txn.transport_error(0.2) == []


def test_custom_timer_values() -> None:
    txn = InviteClientTransaction(request(), reliable=False, timers=TimerConfig(t1=0.1))
    txn.start(0.0)
    assert intervals(retransmit_times(txn, 6.35)) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert txn.next_timer() == pytest.approx(6.4)


def test_client_transaction_constructors_check_method() -> None:
    with pytest.raises(TransactionError):
        InviteClientTransaction(request("BYE"), reliable=False)
    with pytest.raises(TransactionError):
        NonInviteClientTransaction(request("INVITE"), reliable=False)
    with pytest.raises(TransactionError):
        NonInviteClientTransaction(request("ACK"), reliable=False)
    txn = NonInviteClientTransaction(request("BYE"), reliable=False)
    txn.start(0.0)
    with pytest.raises(TransactionError):
        txn.start(0.0)


# --------------------------------------------------------------------------- non-INVITE client


def test_non_invite_client_timer_e_caps_at_t2_and_f_times_out() -> None:
    txn = NonInviteClientTransaction(request("BYE"), reliable=False)
    txn.start(0.0)
    times = retransmit_times(txn, 31.99)
    assert intervals(times) == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert txn.handle_timer(32.0) == [TransactionTimeout("F"), Terminated()]


def test_non_invite_client_provisional_switches_e_to_t2() -> None:
    txn = NonInviteClientTransaction(request("OPTIONS"), reliable=False)
    txn.start(0.0)
    retransmit_times(txn, 0.5)  # first retransmission at 0.5, next due at 1.5
    trying = response(txn.request, 100)
    assert txn.receive(trying, 0.7) == [Deliver(trying)]
    times = retransmit_times(txn, 20.0)
    assert intervals(times, 0.5) == [1.0, 4, 4, 4, 4]


def test_non_invite_client_final_then_timer_k() -> None:
    txn = NonInviteClientTransaction(request("BYE"), reliable=False)
    txn.start(0.0)
    ok = response(txn.request, 200)
    assert txn.receive(ok, 1.0) == [Deliver(ok)]
    assert txn.receive(ok, 1.1) == []  # retransmission absorbed in Completed
    assert txn.next_timer() == 6.0  # K = T4
    assert txn.handle_timer(6.0) == [Terminated()]


def test_non_invite_client_reliable() -> None:
    txn = NonInviteClientTransaction(request("BYE"), reliable=True)
    txn.start(0.0)
    assert txn.next_timer() == 32.0
    assert txn.receive(response(txn.request, 200), 1.0)[-1] == Terminated()


# --------------------------------------------------------------------------- INVITE server


def test_invite_server_sends_trying_and_retransmits_provisional_on_request_retransmit() -> None:
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False)
    [first] = txn.start(0.0)
    assert isinstance(first, Transmit) and isinstance(first.message, SipResponse)
    assert first.message.status == 100
    assert txn.receive(inv, 0.5) == [first]
    ringing = response(inv, 180)
    assert txn.respond(ringing, 1.0) == [Transmit(ringing)]
    assert txn.receive(inv, 1.5) == [Transmit(ringing)]


def test_invite_server_without_auto_trying() -> None:
    txn = InviteServerTransaction(request(), reliable=False, auto_trying=False)
    assert txn.start(0.0) == []
    assert txn.receive(request(), 0.1) == []


def test_invite_server_timer_g_and_h() -> None:
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False)
    txn.start(0.0)
    busy = response(inv, 486)
    assert txn.respond(busy, 0.0) == [Transmit(busy)]
    assert txn.state is TransactionState.COMPLETED
    times = retransmit_times(txn, 31.99)
    assert intervals(times) == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert txn.receive(inv, 31.995) == [Transmit(busy)]
    assert txn.handle_timer(32.0) == [TransactionTimeout("H"), Terminated()]


def test_invite_server_ack_confirms_then_timer_i() -> None:
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False)
    txn.start(0.0)
    busy = response(inv, 486)
    txn.respond(busy, 0.0)
    ack = build_ack_for_non2xx(inv, busy)
    assert txn.receive(ack, 0.7) == []
    assert txn.state is TransactionState.CONFIRMED
    assert txn.receive(ack, 0.8) == []  # absorbed
    assert txn.receive(inv, 0.9) == []
    assert txn.next_timer() == 0.7 + 5.0
    assert txn.handle_timer(5.7) == [Terminated()]


def test_invite_server_reliable_ack_terminates_at_once() -> None:
    inv = request()
    txn = InviteServerTransaction(inv, reliable=True)
    txn.start(0.0)
    busy = response(inv, 486)
    txn.respond(busy, 0.0)
    assert txn.next_timer() == 32.0  # H runs, G does not
    assert txn.receive(build_ack_for_non2xx(inv, busy), 1.0) == [Terminated()]


def test_invite_server_2xx_accepted_state() -> None:
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False)
    txn.start(0.0)
    ok = response(inv, 200)
    assert txn.respond(ok, 1.0) == [Transmit(ok)]
    assert txn.state is TransactionState.ACCEPTED
    assert txn.receive(inv, 1.2) == []  # retransmitted INVITE absorbed, core retransmits 2xx
    assert txn.respond(ok, 1.5) == [Transmit(ok)]  # core's retransmission passes through
    with pytest.raises(TransactionError):
        txn.respond(response(inv, 486), 1.6)
    assert txn.next_timer() == 1.0 + 32.0  # Timer L
    assert txn.handle_timer(33.0) == [Terminated()]


def test_server_rejects_response_for_other_request() -> None:
    txn = InviteServerTransaction(request(), reliable=False)
    with pytest.raises(TransactionError):
        txn.respond(response(request(seq=9), 200), 0.0)


# --------------------------------------------------------------------------- non-INVITE server


def test_non_invite_server_lifecycle() -> None:
    bye = request("BYE")
    txn = NonInviteServerTransaction(bye, reliable=False)
    assert txn.start(0.0) == []
    assert txn.receive(bye, 0.1) == []  # Trying: absorb
    trying = response(bye, 100)
    txn.respond(trying, 0.2)
    assert txn.receive(bye, 0.3) == [Transmit(trying)]
    ok = response(bye, 200)
    assert txn.respond(ok, 0.4) == [Transmit(ok)]
    assert txn.receive(bye, 0.5) == [Transmit(ok)]
    with pytest.raises(TransactionError):
        txn.respond(ok, 0.6)
    assert txn.next_timer() == 0.4 + 32.0  # Timer J
    assert txn.handle_timer(32.4) == [Terminated()]


def test_non_invite_server_reliable_terminates_on_final() -> None:
    bye = request("BYE")
    txn = NonInviteServerTransaction(bye, reliable=True)
    assert txn.respond(response(bye, 200), 0.0)[-1] == Terminated()


# --------------------------------------------------------------------------- 2xx retransmitter


def test_2xx_retransmitter_until_timeout() -> None:
    inv = request()
    ok = response(inv, 200)
    waiter = TwoXXRetransmitter(ok, reliable=False)
    assert waiter.start(0.0) == [Transmit(ok)]
    times = retransmit_times(waiter, 31.99)
    assert intervals(times) == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert waiter.handle_timer(32.0) == [TransactionTimeout("2xx"), Terminated()]


def test_2xx_retransmitter_stops_on_matching_ack() -> None:
    inv = request()
    ok = response(inv, 200)
    waiter = TwoXXRetransmitter(ok, reliable=True)
    waiter.start(0.0)
    assert waiter.next_timer() == 32.0
    ack = request("ACK", branch="z9hG4bKnew")
    ack.headers.set("To", ok.headers.get("To") or "")
    wrong = request("ACK", branch="z9hG4bKnew", seq=2)
    wrong.headers.set("To", ok.headers.get("To") or "")
    assert waiter.receive(wrong, 1.0) == []
    assert waiter.receive(ack, 1.0) == [Deliver(ack), Terminated()]


def test_2xx_retransmitter_needs_invite_2xx() -> None:
    with pytest.raises(TransactionError):
        TwoXXRetransmitter(response(request(), 486), reliable=False)


# --------------------------------------------------------------------------- table


def test_table_matches_responses_by_branch_and_method() -> None:
    table = TransactionTable()
    inv = InviteClientTransaction(request(), reliable=False)
    cancel = NonInviteClientTransaction(build_cancel(inv.request), reliable=False)
    for txn in (inv, cancel):
        table.add(txn)
        txn.start(0.0)
    ok_cancel = response(cancel.request, 200)
    matched = table.receive(ok_cancel, 0.1)
    assert matched is not None and matched[0] is cancel
    terminated = response(inv.request, 487)
    matched = table.receive(terminated, 0.2)
    assert matched is not None and matched[0] is inv
    other = response(request(branch="z9hG4bKother"), 200)
    assert table.receive(other, 0.3) is None


def test_table_matches_request_retransmission_ack_and_cancel() -> None:
    table = TransactionTable()
    inv = request()
    server = InviteServerTransaction(inv, reliable=False)
    table.add(server)
    server.start(0.0)
    assert table.match_request(request()) is server
    # Same branch from a different sent-by is a different transaction (§17.2.3).
    assert table.match_request(request(sent_by="10.0.0.2:5060")) is None
    cancel = build_cancel(inv)
    assert table.match_request(cancel) is None  # CANCEL is its own transaction…
    assert table.match_cancel(cancel) is server  # …but targets the INVITE
    busy = response(inv, 487)
    server.respond(busy, 0.1)
    matched = table.receive(build_ack_for_non2xx(inv, busy), 0.2)
    assert matched is not None and matched[0] is server
    assert server.state is TransactionState.CONFIRMED


def test_table_rfc2543_matching_without_magic_cookie() -> None:
    table = TransactionTable()
    old = request(branch="1234")
    server = InviteServerTransaction(old, reliable=False)
    table.add(server)
    assert table.match_request(request(branch="1234")) is server
    ack = request("ACK", branch="1234")
    ack.headers.set("To", "<sip:bob@b.example>;tag=xyz")
    assert table.match_request(ack) is server
    assert table.match_request(request(branch="1234", seq=2)) is None


def test_table_rejects_duplicates() -> None:
    table = TransactionTable()
    table.add(InviteClientTransaction(request(), reliable=False))
    with pytest.raises(TransactionError):
        table.add(InviteClientTransaction(request(), reliable=False))


def test_table_timer_heap_follows_transactions_and_forgets_terminated() -> None:
    table = TransactionTable()
    a = NonInviteClientTransaction(request("BYE", branch="z9hG4bKa"), reliable=False)
    b = NonInviteServerTransaction(request("INFO", branch="z9hG4bKb"), reliable=False)
    table.add(a)
    table.add(b)
    a.start(0.0)
    b.start(0.0)
    assert table.next_timer() == 0.5
    # A response sent directly on the transaction still reaches the table's schedule.
    b.respond(response(b.request, 200), 0.1)
    fired = table.handle_timer(0.5)
    assert fired == [(a, Transmit(a.request))]
    assert table.next_timer() == 1.5
    a.receive(response(a.request, 200), 1.0)  # K replaces E and F
    assert table.next_timer() == 6.0
    assert table.handle_timer(6.0) == [(a, Terminated())]
    assert len(table) == 1
    assert table.next_timer() == pytest.approx(32.1)
    assert table.handle_timer(40.0) == [(b, Terminated())]
    assert len(table) == 0 and table.next_timer() is None


def test_table_ack_waiter_consumes_2xx_ack() -> None:
    table = TransactionTable()
    inv = request()
    ok = response(inv, 200)
    waiter = TwoXXRetransmitter(ok, reliable=False)
    table.add(waiter)
    waiter.start(0.0)
    ack = request("ACK", branch="z9hG4bKfresh")
    ack.headers.set("To", ok.headers.get("To") or "")
    matched = table.receive(ack, 0.3)
    assert matched == (waiter, [Deliver(ack), Terminated()])
    assert len(table) == 0 and table.next_timer() is None
    assert table.receive(ack, 0.4) is None


def test_build_cancel_per_9_1() -> None:
    inv = request()
    cancel = build_cancel(inv)
    assert cancel.method == "CANCEL" and cancel.uri == inv.uri
    assert cancel.cseq.seq == inv.cseq.seq and cancel.cseq.method == "CANCEL"
    for name in ("Via", "From", "To", "Call-ID"):
        assert cancel.headers.get(name) == inv.headers.get(name)
    assert cancel.headers.get_all("Route") == inv.headers.get_all("Route")
    with pytest.raises(TransactionError):
        build_cancel(request("ACK"))
