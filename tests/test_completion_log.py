"""The completion log's writer against real databases: rows written off the request path, a database outage
survived without losing a row (retried, spilled to a file past the bound and at shutdown, replayed later)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from parley.completion_log import CompletionLog
from parley.store.completions import CompletionRepository
from parley.store.db import Database
from tests.conftest import ADMIN
from tests.store.test_feedback_loop_store import completion


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


class Outage:
    """Take one PostgreSQL database away (no new connections, existing ones cut) and bring it back."""

    def __init__(self, url: str) -> None:
        self.name = url.rsplit("/", 1)[1]
        self.admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")

    def __enter__(self) -> Outage:
        with self.admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false"))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": self.name})  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true"))
        self.admin.dispose()


def make_log(db, tmp_path, **kw):
    log = CompletionLog(CompletionRepository(db), tmp_path / "spill.jsonl", **kw)
    log.start()
    return log


def test_rows_are_written_in_the_background(db, tmp_path):
    log = make_log(db, tmp_path)
    try:
        for i in range(5):
            log.put(completion(f"c{i}"))
        assert wait_for(lambda: log.status()["written"] == 5)
        assert CompletionRepository(db).get("c4")["answer"] == "An answer."
        assert not log.is_pending("c4")
    finally:
        log.close()


def test_an_outage_loses_no_row(pg_url, tmp_path):
    db = Database(pg_url)
    log = make_log(db, tmp_path, max_pending=10)
    try:
        with Outage(pg_url):
            for i in range(25):  # more than max_pending: the oldest go to the spill file
                log.put(completion(f"o{i}"))
            assert wait_for(lambda: log.status()["write_failures"] >= 1)
            status = log.status()
            # at most max_pending rows (plus a batch being retried) stay in memory; the rest wait in the file
            assert status["written"] == 0 and status["spilled"] >= 5 and status["failing"]
            assert status["backlog"] <= 10 + 10
        assert wait_for(lambda: CompletionRepository(db).get("o24") is not None and log.status()["backlog"] == 0
                        and log.status()["spill_file_rows"] == 0, timeout=30)  # fmt: skip
        assert all(CompletionRepository(db).get(f"o{i}") for i in range(25))
    finally:
        log.close()
        db.close()


def test_rows_queued_at_shutdown_during_an_outage_are_written_after_a_restart(pg_url, tmp_path):
    db = Database(pg_url)
    with Outage(pg_url):
        log = make_log(db, tmp_path)
        log.put(completion("late"))
        assert wait_for(lambda: log.status()["write_failures"] >= 1)
        log.close(timeout=0.5)
    assert (tmp_path / "spill.jsonl").read_text().count("\n") == 1
    restarted = make_log(db, tmp_path)
    try:
        restarted.put(completion("next"))  # a new row wakes the writer; the spilled one follows
        assert wait_for(lambda: CompletionRepository(db).get("late") is not None)
        assert CompletionRepository(db).get("late")["created_at"].replace(tzinfo=UTC) <= datetime.now(UTC)
    finally:
        restarted.close()
        db.close()


def test_a_row_the_database_refuses_is_kept_aside_and_the_rest_written(pg_url, tmp_path):
    db = Database(pg_url)
    log = make_log(db, tmp_path)
    try:
        log.put(completion("good-1"))
        log.put(completion("bad", model="m" * 300))  # longer than the column: PostgreSQL refuses it
        log.put(completion("good-2"))
        assert wait_for(lambda: log.status()["refused"] == 1 and log.status()["written"] == 2)
        assert CompletionRepository(db).get("good-2") and CompletionRepository(db).get("bad") is None
        assert '"id": "bad"' in log.refused_path.read_text()
    finally:
        log.close()
        db.close()
