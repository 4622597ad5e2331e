"""The TeleQuick RPC front door: QUIC streams in, domain calls out.

``dispatch`` is the pure part (frame -> method -> handler -> frame or stream reset, with the auth gate
and the error mapping of PROTOCOL.md §4); ``handlers`` adapts each RPC to the domain; ``server`` is the
thin aioquic edge that owns sockets and streams. It may import ``wire``, ``auth``, ``certs`` and
``calls``, never ``sdk`` or ``cli``.
"""
