"""The embedded store: records round-trip, survive a killed process, commit in groups off the loop,
and a store that cannot be used stops the gateway with a line naming the file."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trunkline.calls.inbound import InboundRouting
from trunkline.enums import InboundRule
from trunkline.store import SCHEMA_VERSION, SqliteStore, StoreError

SALES = InboundRouting("acme", "carrier", InboundRule.HANDLE_AI, ai_websocket_url="wss://bot.example/sales",
                       agent_id="sales", updated_ms=1)


async def test_routing_round_trips_and_a_second_put_replaces_the_first(store: SqliteStore):
    await store.put_inbound_routing(SALES)
    replaced = InboundRouting("acme", "carrier", InboundRule.REJECT, updated_ms=2)
    other = InboundRouting("zeta", "carrier", InboundRule.PLAY_AND_HANGUP, audio_url="/srv/closed.wav", updated_ms=3)
    await asyncio.gather(store.put_inbound_routing(replaced), store.put_inbound_routing(other))
    assert await store.inbound_routings() == [replaced, other]


async def test_concurrent_writes_share_commits(store: SqliteStore):
    await asyncio.gather(*(store.put_inbound_routing(InboundRouting("acme", f"t{i}", InboundRule.REJECT))
                           for i in range(200)))
    assert len(await store.inbound_routings()) == 200
    assert store.jobs_done == 201 and store.commits < 100  # queued while a commit ran, committed together


async def test_a_failing_job_costs_only_itself(store: SqliteStore):
    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO inbound_routing (tenant_id) VALUES ('half a row')")  # NOT NULL columns missing

    outcomes = await asyncio.gather(store._submit(broken), store.put_inbound_routing(SALES), return_exceptions=True)
    assert isinstance(outcomes[0], sqlite3.IntegrityError) and outcomes[1] is None
    assert await store.inbound_routings() == [SALES]


WRITER = """
import asyncio, os, signal, sys
from pathlib import Path
from trunkline.calls.inbound import InboundRouting
from trunkline.enums import InboundRule
from trunkline.store import SqliteStore

async def main():
    store = SqliteStore.open(Path(sys.argv[1]))
    await store.put_inbound_routing(InboundRouting("acme", "carrier", InboundRule.HANDLE_AI, agent_id="sales"))
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush: what a crash leaves

asyncio.run(main())
"""


async def test_a_write_that_was_awaited_survives_kill_9(tmp_path: Path):
    path = tmp_path / "trunkline.db"
    result = subprocess.run([sys.executable, "-c", WRITER, str(path)], capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr
    reopened = SqliteStore.open(path)
    try:
        assert [r.agent_id for r in await reopened.inbound_routings()] == ["sales"]
    finally:
        await reopened.close()


async def test_a_new_store_is_at_the_current_schema_version(tmp_path: Path):
    opened = SqliteStore.open(tmp_path / "deep" / "er" / "trunkline.db")  # folders made as needed
    await opened.close()
    db = sqlite3.connect(tmp_path / "deep" / "er" / "trunkline.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "trunkline.db"
    path.write_bytes(b"this is not sqlite, it is a text file that someone put here" * 100)
    with pytest.raises(StoreError, match=rf"^store {path}: unusable \(file is not a database\); move it away"):
        SqliteStore.open(path)


def test_a_store_from_a_newer_trunkline_is_refused(tmp_path: Path):
    path = tmp_path / "trunkline.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="is newer than this Trunkline's"):
        SqliteStore.open(path)


def test_a_data_dir_that_cannot_hold_the_store_is_a_clear_error(tmp_path: Path):
    (tmp_path / "data").write_text("a file where the data directory should be")
    with pytest.raises(StoreError, match=rf"^store {tmp_path}/data/trunkline.db: cannot open: "):
        SqliteStore.open(tmp_path / "data" / "trunkline.db")
