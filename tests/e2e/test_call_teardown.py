"""A finished call leaves nothing behind but its EndedCall record, freed by reference counting alone:
cycles that wait for the collector cost memory (and fragment it) at every call (issue 11, item 3)."""

from __future__ import annotations

import gc
import shutil
import weakref

import pytest

from tests.conftest import wait_until
from tests.e2e.calls import carrier
from tests.peers.sipp import uas
from trunkline.calls.events import CallEvent
from trunkline.enums import DialplanAction, EventType
from trunkline.media_engine.session import MediaSession
from trunkline.sip.transaction import TimerConfig
from trunkline.sip_engine import OutgoingCall
from trunkline.telephony.leg import SipLeg

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt: sip-tester)")

CALLS = 12


class Hangups:
    def __init__(self) -> None:
        self.answered: list[str] = []
        self.ended = 0

    def deliver(self, event: CallEvent) -> bool:
        if event.event_type == EventType.CHANNEL_ANSWER:
            self.answered.append(event.call_sid)
        elif event.event_type == EventType.CHANNEL_HANGUP_COMPLETE:
            self.ended += 1
        return True


def survivors() -> int:
    return sum(type(o) in (SipLeg, MediaSession, OutgoingCall) for o in gc.get_objects())


async def test_finished_calls_are_freed_without_the_cyclic_collector(start_gateway, peers):
    sipp = await peers(uas("uas_answer", rtp_echo=True, calls=CALLS, timeout_s=60))
    gateway = await start_gateway(carrier(sipp.port, keepalive_s=0))
    # Transactions outlive their call by RFC 3261's timers (D: 32 s); shortened so the test need not wait.
    gateway.sip.timers = TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=0.5)
    hangups = Hangups()
    gateway.events.subscribe("local", "", hangups)
    gc.collect()
    gc.disable()
    try:
        calls = []
        for i in range(CALLS):  # parked and hung up by the API, or hung up by the HANGUP app at once
            app = DialplanAction.PARK if i % 2 else DialplanAction.HANGUP
            calls.append(weakref.ref(gateway.calls.originate("local", "carrier", to="+15551234567", default_app=app)))
        await wait_until(lambda: len(hangups.answered) == CALLS, "every call answered")
        for sid in hangups.answered:
            if gateway.calls.find("local", sid) is not None:
                gateway.calls.terminate("local", sid)
        await wait_until(lambda: hangups.ended == CALLS, "every call ended")
        await wait_until(lambda: not any(ref() for ref in calls) and survivors() == 0,
                         "the calls, legs, dialogs and media sessions to be freed")
        assert gateway.telephony.rtp_ports.leased == 0
    finally:
        gc.enable()
