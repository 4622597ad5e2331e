"""The AI bridge's Python cost per frame, without sockets, against the bare relay's in the same run.

    python bench/ai_path.py [--frames 20000] [--rounds 5] [--instructions]

bench/ai.py measures whole calls, but on a shared VM its figures move by ±20% from run to run (the
measured core slows down when its sibling is busy), which hides a change of a few percent. This
script times only the Python a frame pair costs, with the sockets replaced by objects that accept
the writes: an RTP packet in (session, reorder buffer, statistics, bridge, Twilio dialect, WebSocket
frame out), an agent ``media`` message in (WebSocket frame, JSON, base64, queue) and the clock's tick
(queue, RTP packet out). The baseline is bench/ai.py's bare relay doing its part of the same frame
pair (base64 into a media message and a WebSocket frame; a media message back into an RTP packet).

The two are timed alternately, ``--rounds`` times each, and the fastest round of each is printed
(noise only ever adds time) with their ratio. ``--instructions`` instead counts instructions under
valgrind's callgrind (a run of ``--frames`` minus a run of none, so start-up cancels out), which is
the same on every run of the same code: the figure to compare before and after a change.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _loop import run  # noqa: E402
from ai import RTP_HEADER, FloorStream  # noqa: E402
from websockets.server import ServerProtocol  # noqa: E402

from trunkline.ai.bridge import AgentBridge  # noqa: E402
from trunkline.ai.dialect import make_dialect  # noqa: E402
from trunkline.ai.events import CallInfo  # noqa: E402
from trunkline.ai.websocket_codec import Message, WebSocketClient, WebSocketTarget  # noqa: E402
from trunkline.ai.websocket_link import WebSocketLink  # noqa: E402
from trunkline.media.sdp import NegotiatedMedia  # noqa: E402
from trunkline.media_engine.clock import MediaClock  # noqa: E402
from trunkline.media_engine.ports import RtpPortPool  # noqa: E402
from trunkline.media_engine.session import MediaSession  # noqa: E402

PEER = ("127.0.0.1", 40000)
ULAW = bytes(range(160))


class Sink:
    """Stands in for both transports: takes every write, is never full or closing."""

    def sendto(self, data: bytes, addr=None) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def abort(self) -> None:  # the link's close timer, if it fires before the run ends
        pass


def server_frame(text: str) -> bytes:
    """An unmasked server-to-client text frame, as an agent sends it."""
    data = text.encode()
    head = bytes((0x81, len(data))) if len(data) < 126 else b"\x81\x7e" + len(data).to_bytes(2, "big")
    return head + data


def open_client(url: str) -> WebSocketClient:
    client = WebSocketClient(WebSocketTarget.parse(url))
    server = ServerProtocol()
    server.receive_data(client.handshake())
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    client.receive(b"".join(server.data_to_send()))
    return client


def agent_media() -> bytes:
    message = {"event": "media", "streamSid": "MZ1", "media": {"payload": base64.b64encode(ULAW).decode()}}
    return server_frame(json.dumps(message, separators=(",", ":")))


async def trunkline_path(frames: int) -> float:
    """Seconds for ``frames`` frame pairs through the gateway's bridge."""
    clock = MediaClock(phases=4)
    session = await MediaSession.open(clock, RtpPortPool("127.0.0.1", 41000, 41999))
    clock.remove(session)  # ticked by hand below
    session.configure(NegotiatedMedia(codec="PCMU", payload_type=0, clock_rate=8000, telephone_event_pt=101,
                                      remote_address=PEER[0], remote_port=PEER[1], remote_direction="sendrecv",
                                      local_direction="sendrecv"))
    rtp_socket, session._rtp_socket = session._rtp_socket, Sink()
    url = "ws://127.0.0.1:1/agent"
    link = WebSocketLink(url, make_dialect("twilio", CallInfo("CA1", "MZ1", "+1", "+2", "t", "tenant", "a"), {}))
    link._ws, link._transport = open_client(url), Sink()
    bridge = AgentBridge(session, link, on_hangup=lambda: None, on_transfer=lambda to: None, on_closed=lambda r: None)
    bridge.start()
    packets = [RTP_HEADER.pack(0x80, 0, seq & 0xFFFF, seq * 160, 0xCAFE) + ULAW for seq in range(frames)]
    message = agent_media()
    started = time.perf_counter()
    for packet in packets:
        session._on_rtp_datagram(packet, PEER)
        link.data_received(message)
        session._sent_slot = -1  # as if the clock had moved on a slot
        session.tick(clock.now())
    elapsed = time.perf_counter() - started
    bridge.stop()
    session._rtp_socket = rtp_socket
    session.close()
    await session.wait_closed()
    return elapsed


class _Relay:
    transport = Sink()


def floor_path(frames: int) -> float:
    """Seconds for ``frames`` frame pairs through the bare relay's per-message code."""
    stream = FloorStream.__new__(FloorStream)
    stream.relay, stream.addr, stream.sid = _Relay(), PEER, "MZ1"
    stream.ws, stream.transport, stream.open = open_client("ws://127.0.0.1:1/agent"), Sink(), True
    stream.seq, stream.ts, stream.ssrc = 0, 0, 0xCAFE
    packets = [RTP_HEADER.pack(0x80, 0, seq & 0xFFFF, seq * 160, 0xCAFE) + ULAW for seq in range(frames)]
    message = agent_media()
    started = time.perf_counter()
    for packet in packets:
        stream.to_agent(packet[12:])
        for event in stream.ws.receive(message):
            if type(event) is Message:
                stream.from_agent(event.data)
    return time.perf_counter() - started


async def timed(args) -> None:
    best_trunkline = best_floor = float("inf")
    for _ in range(args.rounds):
        best_trunkline = min(best_trunkline, await trunkline_path(args.frames))
        best_floor = min(best_floor, floor_path(args.frames))
    per_trunkline, per_floor = best_trunkline / args.frames * 1e6, best_floor / args.frames * 1e6
    print(f"per frame pair, Python only (fastest of {args.rounds} rounds of {args.frames}):")
    ratio = per_trunkline / per_floor
    print(f"  trunkline {per_trunkline:6.2f} us   bare relay {per_floor:6.2f} us   ratio {ratio:.2f}")


def counted(path: str, frames: int) -> int:
    """Instructions callgrind counts for a run of this script's ``--path`` mode."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--path", path, "--frames", str(frames)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True,
    ).stderr
    return int(out.split("Collected : ")[1].split()[0])


def instructions(args) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind (Debian package valgrind)")
    frames = min(args.frames, 4000)  # callgrind runs ~50x slower; the count per frame is exact anyway
    figures = {path: (counted(path, frames) - counted(path, 0)) / frames for path in ("trunkline", "floor")}
    print(f"instructions per frame pair (callgrind, {frames} frames): trunkline {figures['trunkline']:,.0f}"
          f"   bare relay {figures['floor']:,.0f}   ratio {figures['trunkline'] / figures['floor']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--path", choices=("trunkline", "floor"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path == "trunkline":
        run(trunkline_path(args.frames))
    elif args.path == "floor":
        floor_path(args.frames)
    elif args.instructions:
        instructions(args)
    else:
        run(timed(args))


if __name__ == "__main__":
    main()
