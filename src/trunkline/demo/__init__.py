"""``trunkline demo``: the whole path on loopback in one process, for a newcomer's first minute.

It owns two stand-ins — a carrier that answers and plays a melody, and an echo agent speaking the
Twilio Media Streams protocol — and the script that starts a gateway between them, places a call
through the SDK and shows events and audio levels. It may import anything in ``trunkline``; nothing
imports it except the CLI (and benchmarks reuse its echo agent).
"""
