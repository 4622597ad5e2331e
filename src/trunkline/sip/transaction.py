"""RFC 3261 §17 transactions (with the RFC 6026 "Accepted" states) as pure state machines.

Every object here is driven the same way: feed it messages and timer ticks with the current time,
carry out the returned actions in order, and ask ``next_timer()`` when to tick it again. Timers are
absolute deadlines on the caller's clock, so tests can replay any timeline exactly. Over a
reliable transport the retransmission timers are never armed and the absorb-retransmission waits
(D, I, J, K) are zero, as §17 prescribes.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar, cast

from .message import (
    BRANCH_MAGIC_COOKIE,
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    build_response,
)

__all__ = [
    "Action",
    "ClientTransaction",
    "Deliver",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "Terminated",
    "TimerConfig",
    "Transaction",
    "TransactionError",
    "TransactionState",
    "TransactionTable",
    "TransactionTimeout",
    "Transmit",
    "TransportError",
    "TwoXXRetransmitter",
    "build_ack_for_non2xx",
    "build_cancel",
    "client_key",
    "server_key",
]


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer base values; T1 may be tuned per trunk when RTT is known (§17.1.1.1)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this message via the transport (responses go where §18.2.2 says, from the Via)."""

    message: SipRequest | SipResponse


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand this message to the transaction user."""

    message: SipRequest | SipResponse


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """The peer never answered (B, F), never ACKed (H, or 2xx waiting in the UAS core)."""

    timer: str


@dataclass(frozen=True, slots=True)
class TransportError:
    """The transport reported failure; the TU must treat it like a timeout (§17.1.4, §17.2.4).

    ``reason`` says what failed (e.g. an ICMP port unreachable), for the TU's logs."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The object is finished and may be forgotten."""


Action = Transmit | Deliver | TransactionTimeout | TransportError | Terminated


class TransactionState(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TransactionError(RuntimeError):
    """The TU asked for something the transaction's state does not allow: a programming error."""


class _Timed(ABC):
    """Named absolute-deadline timers plus the hook that keeps a TransactionTable's heap current."""

    state: TransactionState

    def __init__(self, *, reliable: bool, timers: TimerConfig) -> None:
        self.reliable = reliable
        self.timers = timers
        self._deadlines: dict[str, float] = {}
        self._table: TransactionTable | None = None

    @property
    def terminated(self) -> bool:
        return self.state is TransactionState.TERMINATED

    def next_timer(self) -> float | None:
        return min(self._deadlines.values()) if self._deadlines else None

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``, earliest first."""
        actions: list[Action] = []
        while self._deadlines and not self.terminated:
            name, deadline = min(self._deadlines.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self._deadlines[name]
            self._fire(name, now, actions)
        return actions

    def transport_error(self, now: float, reason: str = "") -> list[Action]:
        if self.terminated:
            return []
        actions: list[Action] = [TransportError(reason)]
        self._terminate(actions)
        return actions

    @abstractmethod
    def _fire(self, name: str, now: float, actions: list[Action]) -> None:
        """React to timer ``name`` expiring, appending the resulting actions."""

    def _arm(self, name: str, deadline: float) -> None:
        self._deadlines[name] = deadline
        if self._table is not None:
            self._table._schedule(self, deadline)

    def _disarm(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _terminate(self, actions: list[Action]) -> None:
        self.state = TransactionState.TERMINATED
        self._deadlines.clear()
        actions.append(Terminated())
        if self._table is not None:
            self._table._forget(self)


# --------------------------------------------------------------------------- client side


def build_ack_for_non2xx(request: SipRequest, response: SipResponse) -> SipRequest:
    """ACK for a non-2xx final response, built by the transaction itself (§17.1.1.3).

    It reuses the INVITE's branch so that it matches the server transaction hop by hop; the To
    comes from the response so that it carries the tag the UAS chose.
    """
    h = Headers()
    h.add("Via", _require(request, "Via"))
    for value in request.headers.get_all("Route"):
        h.add("Route", value)
    h.add("Max-Forwards", "70")
    h.add("From", _require(request, "From"))
    h.add("To", _require(response, "To"))
    h.add("Call-ID", _require(request, "Call-ID"))
    h.add("CSeq", f"{request.cseq.seq} ACK")
    return SipRequest("ACK", request.uri, h)


def build_cancel(request: SipRequest) -> SipRequest:
    """CANCEL for a pending request per §9.1: same branch, URI, Call-ID, From, To and CSeq number.

    The branch must match so that every stateful hop pairs it with the INVITE transaction.
    """
    if request.method in ("ACK", "CANCEL"):
        raise TransactionError(f"{request.method} cannot be cancelled")
    h = Headers()
    h.add("Via", _require(request, "Via"))
    for value in request.headers.get_all("Route"):
        h.add("Route", value)
    h.add("Max-Forwards", "70")
    for name in ("From", "To", "Call-ID"):
        h.add(name, _require(request, name))
    h.add("CSeq", f"{request.cseq.seq} CANCEL")
    return SipRequest("CANCEL", request.uri, h)


def _require(msg: SipRequest | SipResponse, name: str) -> str:
    value = msg.headers.get(name)
    if value is None:
        raise SipParseError(f"missing {name} header")
    return value


class _ClientBase(_Timed):
    def __init__(
        self, request: SipRequest, *, reliable: bool, timers: TimerConfig = TimerConfig()
    ) -> None:
        super().__init__(reliable=reliable, timers=timers)
        if request.method == "ACK":
            raise TransactionError("ACK never creates a client transaction")
        self.request = request
        self.key = client_key(request)
        self._started = False

    def _start_check(self) -> None:
        if self._started:
            raise TransactionError("transaction already started")
        self._started = True


class InviteClientTransaction(_ClientBase):
    """Figure 5 of RFC 3261 as amended by RFC 6026 (Accepted state, timer M)."""

    def __init__(
        self, request: SipRequest, *, reliable: bool, timers: TimerConfig = TimerConfig()
    ) -> None:
        if request.method != "INVITE":
            raise TransactionError("INVITE client transaction needs an INVITE")
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = TransactionState.CALLING
        self._interval_a = timers.t1
        self._ack: SipRequest | None = None

    def start(self, now: float) -> list[Action]:
        self._start_check()
        if not self.reliable:
            self._arm("A", now + self._interval_a)
        self._arm("B", now + 64 * self.timers.t1)
        return [Transmit(self.request)]

    def receive(self, response: SipResponse, now: float) -> list[Action]:
        actions: list[Action] = []
        state = self.state
        status = response.status
        if state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            if status < 200:
                self.state = TransactionState.PROCEEDING
                self._disarm("A", "B")
                actions.append(Deliver(response))
            elif status < 300:
                self.state = TransactionState.ACCEPTED
                self._disarm("A", "B")
                self._arm("M", now + 64 * self.timers.t1)
                actions.append(Deliver(response))
            else:
                self._ack = build_ack_for_non2xx(self.request, response)
                self._disarm("A", "B")
                actions.append(Transmit(self._ack))
                actions.append(Deliver(response))
                self.state = TransactionState.COMPLETED
                if self.reliable:
                    self._terminate(actions)
                else:
                    self._arm("D", now + self.timers.timer_d)
        elif state is TransactionState.ACCEPTED:
            if 200 <= status < 300:
                # Retransmitted or forked 2xx: the TU must ACK each one (RFC 6026 §8.4).
                actions.append(Deliver(response))
        elif state is TransactionState.COMPLETED:
            if status >= 300 and self._ack is not None:
                actions.append(Transmit(self._ack))
        return actions

    def _fire(self, name: str, now: float, actions: list[Action]) -> None:
        if name == "A":
            actions.append(Transmit(self.request))
            self._interval_a *= 2
            self._arm("A", now + self._interval_a)
        elif name == "B":
            actions.append(TransactionTimeout("B"))
            self._terminate(actions)
        else:  # D or M
            self._terminate(actions)


class NonInviteClientTransaction(_ClientBase):
    """Figure 6 of RFC 3261."""

    def __init__(
        self, request: SipRequest, *, reliable: bool, timers: TimerConfig = TimerConfig()
    ) -> None:
        if request.method == "INVITE":
            raise TransactionError("INVITE needs an InviteClientTransaction")
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = TransactionState.TRYING
        self._interval_e = timers.t1

    def start(self, now: float) -> list[Action]:
        self._start_check()
        if not self.reliable:
            self._arm("E", now + self._interval_e)
        self._arm("F", now + 64 * self.timers.t1)
        return [Transmit(self.request)]

    def receive(self, response: SipResponse, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return actions
        actions.append(Deliver(response))
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return actions
        self.state = TransactionState.COMPLETED
        self._disarm("E", "F")
        if self.reliable:
            self._terminate(actions)
        else:
            self._arm("K", now + self.timers.t4)
        return actions

    def _fire(self, name: str, now: float, actions: list[Action]) -> None:
        if name == "E":
            actions.append(Transmit(self.request))
            if self.state is TransactionState.PROCEEDING:
                self._interval_e = self.timers.t2
            else:
                self._interval_e = min(2 * self._interval_e, self.timers.t2)
            self._arm("E", now + self._interval_e)
        elif name == "F":
            actions.append(TransactionTimeout("F"))
            self._terminate(actions)
        else:  # K
            self._terminate(actions)


# --------------------------------------------------------------------------- server side


class _ServerBase(_Timed):
    def __init__(
        self, request: SipRequest, *, reliable: bool, timers: TimerConfig = TimerConfig()
    ) -> None:
        super().__init__(reliable=reliable, timers=timers)
        if request.method == "ACK":
            raise TransactionError("ACK never creates a server transaction")
        self.request = request
        self.key = server_key(request)
        self.last_response: SipResponse | None = None

    def _check_response(self, response: SipResponse) -> None:
        if response.cseq != self.request.cseq:
            raise TransactionError("response CSeq does not match the request")


class InviteServerTransaction(_ServerBase):
    """Figure 7 of RFC 3261 as amended by RFC 6026 (Accepted state, timer L).

    2xx responses are sent once; retransmitting them until the ACK arrives is the UAS core's job
    (:class:`TwoXXRetransmitter`), because the ACK to a 2xx is a separate transaction.
    """

    def __init__(
        self, request: SipRequest, *, reliable: bool, timers: TimerConfig = TimerConfig(),
        auto_trying: bool = True,
    ) -> None:
        if request.method != "INVITE":
            raise TransactionError("INVITE server transaction needs an INVITE")
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = TransactionState.PROCEEDING
        self.auto_trying = auto_trying
        self._interval_g = timers.t1

    def start(self, now: float) -> list[Action]:
        """Send 100 Trying at once, which satisfies §17.2.1's 200 ms rule without a timer."""
        if not self.auto_trying or self.last_response is not None:
            return []
        self.last_response = build_response(self.request, 100)
        return [Transmit(self.last_response)]

    def respond(self, response: SipResponse, now: float) -> list[Action]:
        self._check_response(response)
        status = response.status
        actions: list[Action] = []
        if self.state is TransactionState.ACCEPTED and 200 <= status < 300:
            actions.append(Transmit(response))
            return actions
        if self.state is not TransactionState.PROCEEDING:
            raise TransactionError(f"cannot send {status} in state {self.state.value}")
        self.last_response = response
        actions.append(Transmit(response))
        if status < 200:
            return actions
        if status < 300:
            self.state = TransactionState.ACCEPTED
            self._arm("L", now + 64 * self.timers.t1)
        else:
            self.state = TransactionState.COMPLETED
            if not self.reliable:
                self._arm("G", now + self._interval_g)
            self._arm("H", now + 64 * self.timers.t1)
        return actions

    def receive(self, request: SipRequest, now: float) -> list[Action]:
        actions: list[Action] = []
        state = self.state
        if request.method == "ACK":
            if state is TransactionState.COMPLETED:
                self.state = TransactionState.CONFIRMED
                self._disarm("G", "H")
                if self.reliable:
                    self._terminate(actions)
                else:
                    self._arm("I", now + self.timers.t4)
            elif state is TransactionState.ACCEPTED:
                # Only a pre-3261 peer's ACK can match here (RFC 6026 §7.1 passes it up).
                actions.append(Deliver(request))
        elif state in (TransactionState.PROCEEDING, TransactionState.COMPLETED):
            if self.last_response is not None:
                actions.append(Transmit(self.last_response))
        return actions

    def _fire(self, name: str, now: float, actions: list[Action]) -> None:
        if name == "G":
            if self.last_response is not None:
                actions.append(Transmit(self.last_response))
            self._interval_g = min(2 * self._interval_g, self.timers.t2)
            self._arm("G", now + self._interval_g)
        elif name == "H":
            actions.append(TransactionTimeout("H"))
            self._terminate(actions)
        else:  # I or L
            self._terminate(actions)


class NonInviteServerTransaction(_ServerBase):
    """Figure 8 of RFC 3261."""

    def __init__(
        self, request: SipRequest, *, reliable: bool, timers: TimerConfig = TimerConfig()
    ) -> None:
        if request.method == "INVITE":
            raise TransactionError("INVITE needs an InviteServerTransaction")
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = TransactionState.TRYING

    def start(self, now: float) -> list[Action]:
        """Nothing to send yet: a non-INVITE request is answered by the TU (no 100 Trying)."""
        return []

    def respond(self, response: SipResponse, now: float) -> list[Action]:
        self._check_response(response)
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            raise TransactionError(f"cannot send {response.status} in state {self.state.value}")
        self.last_response = response
        actions: list[Action] = [Transmit(response)]
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return actions
        self.state = TransactionState.COMPLETED
        if self.reliable:
            self._terminate(actions)
        else:
            self._arm("J", now + 64 * self.timers.t1)
        return actions

    def receive(self, request: SipRequest, now: float) -> list[Action]:
        if (
            self.state in (TransactionState.PROCEEDING, TransactionState.COMPLETED)
            and self.last_response is not None
        ):
            return [Transmit(self.last_response)]
        return []

    def _fire(self, name: str, now: float, actions: list[Action]) -> None:
        self._terminate(actions)  # J is the only timer


class TwoXXRetransmitter(_Timed):
    """UAS core retransmission of an INVITE 2xx until its ACK arrives (§13.3.1.4).

    Retransmits at T1, doubling up to T2, on unreliable transports; on any transport gives up after
    64*T1 with a ``TransactionTimeout("2xx")``, upon which the TU should send BYE.
    """

    def __init__(
        self, response: SipResponse, *, reliable: bool, timers: TimerConfig = TimerConfig()
    ) -> None:
        super().__init__(reliable=reliable, timers=timers)
        cseq = response.cseq
        if not 200 <= response.status < 300 or cseq.method != "INVITE":
            raise TransactionError("only a 2xx to INVITE waits for an ACK")
        self.response = response
        self.key = ack_key(response.call_id, cseq.seq, response.to_addr.tag)
        self.state = TransactionState.ACCEPTED
        self._interval = timers.t1

    def start(self, now: float) -> list[Action]:
        if not self.reliable:
            self._arm("retransmit", now + self._interval)
        self._arm("2xx", now + 64 * self.timers.t1)
        return [Transmit(self.response)]

    def matches(self, ack: SipRequest) -> bool:
        return ack.method == "ACK" and ack_key(
            ack.call_id, ack.cseq.seq, ack.to_addr.tag
        ) == self.key

    def receive(self, ack: SipRequest, now: float) -> list[Action]:
        """Stop on the matching ACK and pass it up: it may carry the SDP answer."""
        if self.terminated or not self.matches(ack):
            return []
        actions: list[Action] = [Deliver(ack)]
        self.state = TransactionState.CONFIRMED
        self._terminate(actions)
        return actions

    def _fire(self, name: str, now: float, actions: list[Action]) -> None:
        if name == "retransmit":
            actions.append(Transmit(self.response))
            self._interval = min(2 * self._interval, self.timers.t2)
            self._arm("retransmit", now + self._interval)
        else:
            actions.append(TransactionTimeout("2xx"))
            self._terminate(actions)


# --------------------------------------------------------------------------- matching

ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction
Transaction = ClientTransaction | ServerTransaction | TwoXXRetransmitter


def client_key(message: SipRequest | SipResponse) -> tuple[str, str]:
    """§17.1.3: a response matches by top Via branch and CSeq method (Via is ours, so no sent-by)."""
    branch = message.top_via.branch or ""
    return (branch, message.cseq.method)


def server_key(request: SipRequest, method: str | None = None) -> tuple[str, ...]:
    """§17.2.3 key of the server transaction a request belongs to.

    ACK maps to the INVITE it acknowledges; ``method`` overrides the method, which is how CANCEL
    finds the INVITE it targets (§9.2). Branches without the magic cookie come from RFC 2543
    peers and fall back to matching on dialog identifiers and the whole top Via (To tag excluded,
    since the ACK of a non-2xx carries one the INVITE did not).
    """
    via = request.top_via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    sent_by = f"{via.host.lower()}:{via.port or ''}"
    if branch is not None and branch.startswith(BRANCH_MAGIC_COOKIE):
        return ("3261", branch, sent_by, method)
    return (
        "2543", request.uri, request.from_addr.tag or "", request.call_id,
        str(request.cseq.seq), str(via), method,
    )


_K = TypeVar("_K")
_T = TypeVar("_T")


def ack_key(call_id: str, seq: int, to_tag: str | None) -> tuple[str, int, str]:
    return (call_id, seq, to_tag or "")


class TransactionTable:
    """All live transactions of one SIP endpoint, matched and timed together.

    The table keeps a heap of deadlines fed by the transactions themselves, so ``next_timer`` is
    cheap with thousands of calls in flight; terminated transactions drop out automatically.
    """

    def __init__(self) -> None:
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._server: dict[tuple[str, ...], ServerTransaction] = {}
        self._acks: dict[tuple[str, int, str], TwoXXRetransmitter] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._client) + len(self._server) + len(self._acks)

    def add(self, txn: Transaction) -> None:
        if txn.terminated:
            return
        if isinstance(txn, TwoXXRetransmitter):
            self._register(self._acks, txn.key, txn)
        elif isinstance(txn, (InviteClientTransaction, NonInviteClientTransaction)):
            self._register(self._client, txn.key, txn)
        else:
            self._register(self._server, txn.key, txn)
        txn._table = self
        for deadline in txn._deadlines.values():
            self._schedule(txn, deadline)

    def match_response(self, response: SipResponse) -> ClientTransaction | None:
        return self._client.get(client_key(response))

    def match_request(self, request: SipRequest) -> ServerTransaction | None:
        return self._server.get(server_key(request))

    def match_cancel(self, cancel: SipRequest) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (§9.2), if it is still known."""
        txn = self._server.get(server_key(cancel, "INVITE"))
        return txn if isinstance(txn, InviteServerTransaction) else None

    def match_ack(self, ack: SipRequest) -> TwoXXRetransmitter | None:
        return self._acks.get(ack_key(ack.call_id, ack.cseq.seq, ack.to_addr.tag))

    def receive(
        self, message: SipRequest | SipResponse, now: float
    ) -> tuple[Transaction, list[Action]] | None:
        """Route a parsed message to its transaction; None means the TU must handle it.

        Unmatched requests start new server transactions (or are an ACK nobody waits for);
        unmatched responses are strays, such as 2xx retransmissions after timer M.
        """
        if isinstance(message, SipResponse):
            client = self.match_response(message)
            return None if client is None else (client, client.receive(message, now))
        server = self.match_request(message)
        if server is not None:
            return server, server.receive(message, now)
        if message.method == "ACK":
            waiter = self.match_ack(message)
            if waiter is not None:
                return waiter, waiter.receive(message, now)
        return None

    def next_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, txn = heap[0]
            if not txn.terminated and deadline in txn._deadlines.values():
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> list[tuple[Transaction, Action]]:
        out: list[tuple[Transaction, Action]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, txn = heapq.heappop(heap)
            if txn.terminated:
                continue
            out.extend((txn, action) for action in txn.handle_timer(now))
        return out

    @staticmethod
    def _register(registry: dict[_K, _T], key: _K, txn: _T) -> None:
        if key in registry:
            raise TransactionError(f"duplicate transaction {key!r}")
        registry[key] = txn

    def _schedule(self, txn: _Timed, deadline: float) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), cast(Transaction, txn)))

    def _forget(self, txn: _Timed) -> None:
        if isinstance(txn, TwoXXRetransmitter):
            if self._acks.get(txn.key) is txn:
                del self._acks[txn.key]
        elif isinstance(txn, (InviteClientTransaction, NonInviteClientTransaction)):
            if self._client.get(txn.key) is txn:
                del self._client[txn.key]
        elif isinstance(txn, (InviteServerTransaction, NonInviteServerTransaction)):
            if self._server.get(txn.key) is txn:
                del self._server[txn.key]
