"""What SRTP costs a call: one media session's frame pair with and without it, without sockets.

    python bench/srtp.py [--frames 20000] [--rounds 5]

A frame pair is what a call does every 20 ms: an RTP packet in (SRTP: authenticated and decrypted
first) through the session, its statistics and the reorder buffer to an ``on_audio`` consumer, and
the clock's tick sending one packet out (SRTP: encrypted). The socket under the session is replaced
by an object that takes the writes, as in bench/ai_path.py, and inbound packets enter where the
socket would hand them over, so the two paths differ only by what SRTP adds. The cipher alone
(libsrtp's protect + unprotect of a 172-byte packet, through pylibsrtp) is timed too.

Plain and SRTP rounds alternate, ``--rounds`` times each; the fastest of each is printed (noise only
ever adds time), with the difference as CPU per call: 50 frame pairs a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _loop import run  # noqa: E402
from ai import RTP_HEADER  # noqa: E402
from ai_path import PEER, ULAW, Sink  # noqa: E402

from trunkline.media.sdp import NegotiatedMedia  # noqa: E402
from trunkline.media.srtp import SdesKey, SrtpContext  # noqa: E402
from trunkline.media_engine.clock import MediaClock  # noqa: E402
from trunkline.media_engine.ports import RtpPortPool  # noqa: E402
from trunkline.media_engine.session import MediaSession  # noqa: E402
from trunkline.media_engine.sources import Silence  # noqa: E402

MEDIA = NegotiatedMedia(codec="PCMU", payload_type=0, clock_rate=8000, telephone_event_pt=101,
                        remote_address=PEER[0], remote_port=PEER[1], remote_direction="sendrecv",
                        local_direction="sendrecv")


def packets(frames: int) -> list[bytes]:
    return [RTP_HEADER.pack(0x80, 0, seq & 0xFFFF, seq * 160, 0xCAFE) + ULAW for seq in range(frames)]


async def session_path(frames: int, srtp: bool) -> float:
    """Seconds for ``frames`` frame pairs through one session."""
    clock = MediaClock()
    session = await MediaSession.open(clock, RtpPortPool("127.0.0.1", 42000, 42999))
    clock.remove(session)  # ticked by hand below
    wire = packets(frames)
    if srtp:
        session.srtp_key, far_key = SdesKey.generate(), SdesKey.generate()
        session.configure(replace(MEDIA, remote_crypto=far_key))
        far_end = SrtpContext(far_key, session.srtp_key)
        wire = [far_end.protect(packet) for packet in wire]
        socket, sink_holder = session._rtp_socket._inner, session._rtp_socket  # type: ignore[union-attr]
        sink_holder._inner = Sink()
    else:
        session.configure(MEDIA)
        socket = sink_holder = session._rtp_socket
        session._rtp_socket = Sink()
    receive = socket._handler  # what the socket calls with each datagram it reads
    session.deliver_on_arrival = True
    session.on_audio = lambda frame: None
    session.play(Silence())
    started = time.perf_counter()
    for packet in wire:
        receive(packet, PEER)
        session._sent_slot = -1  # as if the clock had moved on a slot
        session.tick(clock.now())
    elapsed = time.perf_counter() - started
    assert session.stats().packets_received == frames and session.stats().packets_sent == frames
    if srtp:
        sink_holder._inner = socket
    else:
        session._rtp_socket = socket
    session.close()
    await session.wait_closed()
    return elapsed


def cipher_only(frames: int) -> float:
    """Seconds for ``frames`` protect + unprotect pairs, libsrtp alone."""
    ours, theirs = SdesKey.generate(), SdesKey.generate()
    sender, receiver = SrtpContext(ours, theirs), SrtpContext(theirs, ours)
    wire = packets(frames)
    started = time.perf_counter()
    for packet in wire:
        receiver.unprotect(sender.protect(packet))
    return time.perf_counter() - started


async def timed(args) -> None:
    best = {"plain": float("inf"), "srtp": float("inf"), "cipher": float("inf")}
    for _ in range(args.rounds):
        best["plain"] = min(best["plain"], await session_path(args.frames, srtp=False))
        best["srtp"] = min(best["srtp"], await session_path(args.frames, srtp=True))
        best["cipher"] = min(best["cipher"], cipher_only(args.frames))
    us = {name: seconds / args.frames * 1e6 for name, seconds in best.items()}
    added = us["srtp"] - us["plain"]
    print(f"per frame pair (fastest of {args.rounds} rounds of {args.frames}):")
    print(f"  session plain {us['plain']:6.2f} us   session SRTP {us['srtp']:6.2f} us   "
          f"SRTP adds {added:5.2f} us ({added / us['plain']:.0%})")
    print(f"  libsrtp protect + unprotect alone {us['cipher']:5.2f} us")
    print(f"  per call (50 pairs/s): SRTP adds {added * 50 / 1e4:.3f} % of a core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    run(timed(parser.parse_args()))


if __name__ == "__main__":
    main()
