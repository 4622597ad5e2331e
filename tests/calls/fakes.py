"""A scripted telephony side for domain tests: legs that record what the domain asked of them and
let the test play the far end. (End-to-end behaviour is tested against SIPp elsewhere.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from trunkline.calls.ports import AudioSpec, LegEvents, MediaStats


@dataclass
class FakeLeg:
    events: LegEvents
    to: str
    trunk_id: str
    playing: list = field(default_factory=list)
    bridged_to: "FakeLeg | None" = None
    hangups: int = 0
    closed: bool = False
    answered: bool = False

    def hangup(self) -> None:
        self.hangups += 1

    def play(self, audio: AudioSpec) -> None:
        self.playing.append(audio)

    def bridge(self, other: "FakeLeg") -> None:
        self.bridged_to, other.bridged_to = other, self

    def unbridge(self) -> None:
        if self.bridged_to is not None:
            self.bridged_to.bridged_to = None
        self.bridged_to = None

    agent: object = None

    def connect_agent(self, spec, info) -> None:
        self.agent = (spec, info)

    def disconnect_agent(self) -> None:
        self.agent = None

    def listen(self, consumer) -> None:
        self.listener = consumer

    def media_stats(self) -> MediaStats:
        return MediaStats(packets_sent=50, packets_received=49, packets_lost=1, bytes_sent=8000, jitter_ms=1.5, estimated_mos=4.3)

    requests: list = field(default_factory=list)  # mid-call verbs asked of the leg, in order

    def transfer(self, to: str) -> None:
        self.requests.append(("transfer", to))

    def set_hold(self, held: bool) -> None:
        self.requests.append(("hold", held))

    def set_mute(self, muted: bool, wire: bool) -> None:
        self.requests.append(("mute", muted, wire))

    def send_dtmf(self, digit: str, mode: str, duration_ms: int) -> None:
        self.requests.append(("dtmf", digit, mode, duration_ms))

    # the far end
    def ring(self) -> None:
        self.events.leg_ringing()

    def answer(self) -> None:
        self.answered = True
        self.events.leg_answered("PCMU")

    def fail(self, status: int) -> None:
        self.events.leg_failed(status, "x")
        self.close()

    def transfer_result(self, succeeded: bool) -> None:
        self.events.leg_transfer_result(succeeded, "200 OK" if succeeded else "486 Busy Here")

    def hold_changed(self, held: bool) -> None:
        self.events.leg_hold_changed(held)

    def remote_bye(self) -> None:
        self.events.leg_remote_hangup()
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.events.leg_closed()


class FakeTelephony:
    def __init__(self) -> None:
        self.legs: list[FakeLeg] = []
        self.missing: set[str] = set()  # playback sources the test says are not there

    def unplayable(self, source: str) -> str | None:
        return f"{source}: no such file" if source in self.missing else None

    def place_call(self, trunk, to, call_from, events) -> FakeLeg:
        leg = FakeLeg(events, to, trunk.id)
        self.legs.append(leg)
        return leg


class ManualTimers:
    def __init__(self) -> None:
        self.pending: list[list] = []

    def __call__(self, delay, callback):
        entry = [delay, callback, False]
        self.pending.append(entry)

        class Handle:
            def cancel(self_inner) -> None:
                entry[2] = True

        return Handle()

    def fire(self, delay) -> None:
        for entry in list(self.pending):
            if entry[0] == delay and not entry[2]:
                entry[2] = True
                entry[1]()
