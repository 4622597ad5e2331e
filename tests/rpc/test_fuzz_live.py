"""Hostile input at a live gateway: at least 10,000 malformed frames, then business as usual."""

from __future__ import annotations

import asyncio
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import client_for
from tests.rawquic import raw_connection
from trunkline.config import config_from_dict
from trunkline.gateway import Gateway
from trunkline.wire import METHODS, METHODS_BY_NAME, encode_frame
from trunkline.wire import dtos as d

BATCH = 100  # within the gateway's initial stream credit
BATCHES = 100
EVENTS_ID = METHODS_BY_NAME["StreamEvents"].method_id
METHOD_IDS = [m.method_id for m in METHODS]
SAMPLES = [encode_frame(m.method_id, m.request()) for m in METHODS] + [
    encode_frame(METHODS_BY_NAME["Originate"].method_id, d.OriginateRequest(to="+15551234567", trunk_id="carrier")),
    encode_frame(METHODS_BY_NAME["ExecuteDialplan"].method_id, d.ExecuteDialplanRequest(call_sid="c", app_args="1:rfc2833:100")),
]


@st.composite
def malformed_frame(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "flip", "truncate", "length", "envelope", "extend"]))
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=64))
    frame = bytearray(draw(st.sampled_from(SAMPLES)))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        frame = frame[: draw(st.integers(0, len(frame) - 1))]
    elif kind == "length":
        frame[0:4] = struct.pack("<I", draw(st.sampled_from([0, 1, 3, 4, 0xFFFFFFFF, (1 << 20) + 1]) | st.integers(0, 200)))
    elif kind == "envelope":  # valid framing, hostile envelope header
        size = draw(st.sampled_from([-1, -(2**31), 2**31 - 1, 7]) | st.integers(-10, 300))
        body = struct.pack("<BBi", draw(st.integers(0, 255)), draw(st.integers(0, 255)), size)
        body += draw(st.binary(max_size=40))
        frame = bytearray(struct.pack("<II", 4 + len(body), draw(st.sampled_from(METHOD_IDS))) + body)
    else:  # a negative or huge string length inside an otherwise valid frame
        frame = bytearray(struct.pack("<II", 14, EVENTS_ID) + struct.pack("<BBii", 0, 0, 4, draw(st.integers(-(2**31), -1) | st.integers(5, 2**31 - 1))))
    return bytes(frame)


def test_ten_thousand_malformed_frames_leave_the_gateway_serving(tmp_path):
    loop = asyncio.new_event_loop()
    gateway = Gateway(config_from_dict({"server": {"quic_listen": "127.0.0.1:0", "data_dir": str(tmp_path)},
                                        "sip": {"listen": "127.0.0.1:0"}}))
    loop.run_until_complete(gateway.start())
    connection = raw_connection(gateway)
    raw = loop.run_until_complete(connection.__aenter__())
    sent = 0

    async def throw(frames: list[bytes], uni_mask: list[bool]) -> None:
        bidi = []
        for frame, uni in zip(frames, uni_mask):
            stream_id = raw.send(frame, uni=uni)
            if not uni:
                bidi.append(stream_id)
        for stream_id in bidi:  # every bidi request is answered or reset, never left hanging
            kind, value = await raw.outcome(stream_id)
            assert kind in ("data", "reset"), (kind, value)

    @settings(max_examples=BATCHES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(frames=st.lists(malformed_frame(), min_size=BATCH, max_size=BATCH),
           uni_mask=st.lists(st.booleans(), min_size=BATCH, max_size=BATCH))
    def batch(frames: list[bytes], uni_mask: list[bool]) -> None:
        nonlocal sent
        loop.run_until_complete(throw(frames, uni_mask))
        sent += len(frames)

    try:
        batch()
        assert sent >= 10_000

        async def still_serving() -> None:
            good = raw.send(encode_frame(EVENTS_ID, d.EventStreamRequest(client_id="after")))
            assert await raw.outcome(good) == ("data", encode_frame(EVENTS_ID, d.Empty()))
            async with client_for(gateway) as fresh:
                assert (await fresh.authenticate("")).tenant_id == "local"

        loop.run_until_complete(still_serving())
    finally:
        loop.run_until_complete(connection.__aexit__(None, None, None))
        loop.run_until_complete(gateway.close())
        loop.close()
