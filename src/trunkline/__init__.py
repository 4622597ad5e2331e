"""Trunkline: a SIP/RTP gateway for AI voice agents that speaks the TeleQuick call-control RPC.

Parts, each a subpackage with its own boundary: ``wire`` (TeleQuick codec, pure), ``rpc`` (QUIC
server adapter), ``auth`` (tokens and tenants), ``certs`` (TLS material), ``calls`` (the call domain),
``sip`` and ``media`` (telephony cores), ``sdk`` (async client), ``cli`` (the ``trunkline`` command).
"""

__version__ = "0.1.0"
