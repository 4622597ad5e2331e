"""SQLite adapter of the store: schema migrations, and one writer thread with group commit.

SQLite calls block (an fsync per commit in WAL mode with ``synchronous=FULL``), so none of them runs
on the event loop: every operation is a job on one thread that owns the connection. The thread takes
every job that queued up while the previous commit ran and commits them together, each inside its
own savepoint so one failing job does not undo the others: under load a commit carries many writes,
idle a write still commits at once. A job's future resolves only after its commit, so a caller that
awaited a write knows it is on disk (what a campaign needs before it dials a row).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from trunkline.calls.inbound import InboundRouting
from trunkline.enums import InboundRule

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Forward migrations; the store is at version len(MIGRATIONS). Append, never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE inbound_routing (
        tenant_id TEXT NOT NULL,
        trunk_id TEXT NOT NULL,
        rule INTEGER NOT NULL,
        audio_url TEXT NOT NULL DEFAULT '',
        webhook_url TEXT NOT NULL DEFAULT '',
        ai_websocket_url TEXT NOT NULL DEFAULT '',
        ai_quic_url TEXT NOT NULL DEFAULT '',
        agent_id TEXT NOT NULL DEFAULT '',
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, trunk_id)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
#: Jobs one commit may carry: bounds how long a caller at the back of a burst waits.
MAX_BATCH = 512


class StoreError(Exception):
    """The store cannot be used: the message names the file and what is wrong with it."""


class _Job:
    __slots__ = ("work", "future", "loop")

    def __init__(self, work: Callable[[sqlite3.Connection], Any], future: asyncio.Future,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.future = future
        self.loop = loop


_STOP = object()


class SqliteStore:
    """Open with :meth:`open` (blocking: at startup, before serving); then every method is async."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self.commits = 0
        self.jobs_done = 0
        self._db = connection
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="trunkline-store", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def open(cls, path: Path, *, synchronous: str = "FULL") -> "SqliteStore":
        """Open (creating it and its folder if needed) and migrate the store at ``path``.

        ``synchronous = "FULL"`` makes every commit survive a power loss, not only a crash of the
        process (``NORMAL``); group commit keeps that affordable."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"store {path}: cannot open: {exc}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.execute("PRAGMA busy_timeout=5000")
            _migrate(db, path)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(f"store {path}: unusable ({exc}); move it away to start with an empty store") from None
        except StoreError:
            db.close()
            raise
        return cls(db, path)

    # --- the records ------------------------------------------------------------------------

    async def put_inbound_routing(self, routing: InboundRouting) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO inbound_routing VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, trunk_id) DO UPDATE SET rule = excluded.rule, "
                "audio_url = excluded.audio_url, webhook_url = excluded.webhook_url, "
                "ai_websocket_url = excluded.ai_websocket_url, ai_quic_url = excluded.ai_quic_url, "
                "agent_id = excluded.agent_id, updated_ms = excluded.updated_ms",
                (routing.tenant_id, routing.trunk_id, int(routing.rule), routing.audio_url, routing.webhook_url,
                 routing.ai_websocket_url, routing.ai_quic_url, routing.agent_id, routing.updated_ms))

        await self._submit(work)

    async def inbound_routings(self) -> list[InboundRouting]:
        def work(db: sqlite3.Connection) -> list[InboundRouting]:
            rows = db.execute("SELECT tenant_id, trunk_id, rule, audio_url, webhook_url, ai_websocket_url, "
                              "ai_quic_url, agent_id, updated_ms FROM inbound_routing ORDER BY tenant_id, trunk_id")
            return [InboundRouting(t, k, InboundRule(r), *rest) for t, k, r, *rest in rows]

        return await self._submit(work)

    # --- the writer thread ------------------------------------------------------------------

    async def _submit(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"store {self.path}: closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put(_Job(work, future, loop))
        return await future

    async def close(self) -> None:
        """Finish what was submitted, then close the file."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def _run(self) -> None:
        db = self._db
        stop = False
        while not stop:
            batch: list[_Job] = []
            job = self._jobs.get()
            while True:
                if job is _STOP:
                    stop = True
                    break
                batch.append(job)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(db, batch)
        db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[tuple[_Job, bool, Any]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for job in batch:
                db.execute("SAVEPOINT job")
                try:
                    value = job.work(db)
                except Exception as exc:  # noqa: BLE001 - one job's failure is that job's caller's
                    db.execute("ROLLBACK TO job")
                    results.append((job, False, exc))
                else:
                    results.append((job, True, value))
                db.execute("RELEASE job")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            log.error("store %s: commit failed: %s", self.path, exc)
            error = StoreError(f"store {self.path}: commit failed: {exc}")
            results = [(job, False, error) for job in batch]
        self.commits += 1
        self.jobs_done += len(batch)
        for job, ok, value in results:
            job.loop.call_soon_threadsafe(_settle, job.future, ok, value)


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"store {path}: schema version {version} is newer than this Trunkline's "
                         f"({SCHEMA_VERSION}); upgrade Trunkline or use another data_dir")
    for number in range(version, SCHEMA_VERSION):  # each step and its version number in one transaction
        db.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[number]}; PRAGMA user_version = {number + 1}; COMMIT;")
        log.info("store %s: migrated to schema version %d", path, number + 1)
