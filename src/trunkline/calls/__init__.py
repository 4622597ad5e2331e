"""The call domain: calls, trunks, tenants, buckets and the events they emit, as plain objects.

It knows no wire format and no transport: it must not import ``wire``, ``rpc``, ``sdk``, ``cli`` or
any socket code. Adapters (the RPC server, later the HTTP API and the SIP stack) translate to and
from these objects.
"""
