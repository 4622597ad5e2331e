"""SIP core of Trunkline: messages, URIs, digest authentication, transactions, dialogs and REFER.

Everything here is a pure state machine in the sans-I/O style: callers hand in bytes, parsed
messages and the current time as a float ``now``, and get back messages, bytes and action objects to
carry out. Keeping the protocol logic free of I/O lets every timer sequence and corner case of
RFC 3261 be tested deterministically, and lets the asyncio transport stay a thin driver. This
package must therefore never import asyncio, sockets or threads, nor the ``rpc``, ``sdk``, ``cli``,
``calls`` or ``media`` subpackages: they depend on it, not the other way round.
"""
