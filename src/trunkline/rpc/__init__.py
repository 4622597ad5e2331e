"""The TeleQuick RPC front door: QUIC streams in, domain calls out.

``dispatch`` is the pure part (frame -> method -> handler -> frame or stream reset, with the auth gate
and the error mapping of PROTOCOL.md §4); ``intake`` is the pure bookkeeping of unfinished requests and
the §5 limits on them; ``handlers`` adapts each RPC to the domain; ``server`` is the thin aioquic edge
that owns sockets, streams and timers. It may import ``wire``, ``auth``, ``certs`` and
``calls``, never ``sdk`` or ``cli``.
"""
