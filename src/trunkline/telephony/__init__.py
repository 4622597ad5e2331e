"""The telephony adapter: the call domain's ports (place a leg, play, bridge, hang up) done with the
SIP engine and RTP media sessions.

It owns the glue between signalling, media and agents — SDP offer/answer, which media session belongs
to which dialog, resolving "music on hold" or a playback URL into audio, which agent link a call's AI
stream uses — and nothing else. It may import ``sip``, ``sip_engine``, ``media``, ``media_engine``,
``ai``, ``calls.ports`` and ``config``; it must not import ``rpc``, ``wire``, ``sdk`` or ``cli``.
"""
