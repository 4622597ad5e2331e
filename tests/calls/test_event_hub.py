"""EventHub routing, replay, expiry and bounds, without any transport."""

from trunkline.calls.events import CallEvent, EventHub
from trunkline.enums import EventType


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self, accept: int = 10**9) -> None:
        self.got: list[str] = []
        self.accept = accept

    def deliver(self, event: CallEvent) -> bool:
        if len(self.got) >= self.accept:
            return False
        self.got.append(event.call_sid)
        return True


def ev(sid: str, client: str = "", tenant: str = "t") -> CallEvent:
    return CallEvent(call_sid=sid, event_type=EventType.CHANNEL_CREATE, status="INITIATED", tenant_id=tenant, client_id=client)


def test_events_without_a_listener_are_replayed_in_order_within_the_grace_period():
    clock = Clock()
    hub = EventHub(grace_s=60, clock=clock)
    for i in range(3):
        hub.publish(ev(f"c{i}", "app"))
    clock.now += 59
    sink = Sink()
    hub.subscribe("t", "app", sink)
    assert sink.got == ["c0", "c1", "c2"]
    assert hub.pending("t", "app") == 0


def test_kept_events_expire_after_the_grace_period():
    clock = Clock()
    hub = EventHub(grace_s=60, clock=clock)
    hub.publish(ev("old", "app"))
    clock.now += 30
    hub.publish(ev("new", "app"))
    clock.now += 31
    hub.sweep()
    assert hub.pending("t", "app") == 1
    sink = Sink()
    hub.subscribe("t", "app", sink)
    assert sink.got == ["new"]


def test_backlog_is_bounded_dropping_the_oldest():
    hub = EventHub(limit=3, clock=Clock())
    for i in range(5):
        hub.publish(ev(f"c{i}", "app"))
    sink = Sink()
    hub.subscribe("t", "app", sink)
    assert sink.got == ["c2", "c3", "c4"]


def test_unrouted_events_reach_every_tenant_subscriber_and_no_other_tenant():
    hub = EventHub(clock=Clock())
    a, b, other = Sink(), Sink(), Sink()
    hub.subscribe("t", "a", a)
    hub.subscribe("t", "", b)
    hub.subscribe("u", "a", other)
    hub.publish(ev("broadcast"))
    hub.publish(ev("mine", "a"))
    assert a.got == ["broadcast", "mine"]
    assert b.got == ["broadcast"]
    assert other.got == []


def test_a_subscriber_that_stops_taking_events_is_dropped_and_the_event_kept():
    hub = EventHub(clock=Clock())
    slow = Sink(accept=1)
    hub.subscribe("t", "app", slow)
    hub.publish(ev("c0", "app"))
    hub.publish(ev("c1", "app"))
    assert slow.got == ["c0"]
    fresh = Sink()
    hub.subscribe("t", "app", fresh)
    assert fresh.got == ["c1"]
