"""Trunkline: a SIP/RTP gateway for AI voice agents that speaks the TeleQuick call-control RPC.

Parts, each a subpackage with its own boundary: pure cores ``wire`` (TeleQuick codec), ``sip`` and
``media``; asyncio edges ``rpc``, ``sip_engine``, ``media_engine`` and ``ai``; the domain ``calls``; the
glue ``telephony`` and ``gateway``; and ``auth``, ``certs``, ``sdk``, ``cli``, ``demo``.
"""

__version__ = "0.1.0"
