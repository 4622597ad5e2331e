"""The telephony adapter: the call domain's ports (place a leg, play, bridge, hang up) done with the
SIP engine and RTP media sessions.

It owns the glue between signalling and media — SDP offer/answer, which media session belongs to
which dialog, resolving "music on hold" or a playback URL into audio — and nothing else. It may import
``sip``, ``sip_engine``, ``media``, ``media_engine``, ``calls.ports`` and ``config``; it must not import
``rpc``, ``wire``, ``sdk`` or ``cli``.
"""
