"""The embedded store: the gateway's durable state, in SQLite (WAL) in the data directory.

It owns what must survive a restart or a crash — inbound routing now; campaigns, their rows and
CDRs as they arrive — and nothing that lives only as long as a call. The domain keeps what it reads
on the hot path in memory and writes through here; writes run on one writer thread that commits
whatever has queued up in one transaction, so the event loop never waits on a disk. The interface is
small and async so the cluster wave can put the same data in PostgreSQL (SCALE.md). It may import
``calls`` (the records it keeps are domain objects) and ``enums``; it must not import ``rpc``,
``sdk``, ``cli``, ``sip``, ``sip_engine``, ``media``, ``media_engine``, ``ai`` or ``telephony``.
"""

from trunkline.store.sqlite import SCHEMA_VERSION, SqliteStore, StoreError

__all__ = ["SCHEMA_VERSION", "SqliteStore", "StoreError"]
