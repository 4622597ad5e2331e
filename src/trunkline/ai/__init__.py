"""AI agent bridges: how a call's audio and control reach a voice agent and come back.

It owns the agent-side protocols — the Twilio Media Streams dialect and the raw PCM dialect over
WebSocket, the QUIC/WebTransport multiplexed protocol of PROTOCOL.md §7 — as pure codecs, the thin
asyncio clients that carry them, and the voice-activity detector used for barge-in. It may import
``media`` and ``media_engine``; it must not import ``rpc``, ``wire``, ``sdk``, ``cli`` or ``sip``.
"""
