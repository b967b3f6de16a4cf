"""`parley log prune` and `parley adapters` against a real database."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from parley.store.adapters import AdapterRepository
from parley.store.completions import CompletionRepository
from parley.store.db import Database
from parley.store.feedback import FeedbackRepository
from tests.store.test_feedback_loop_store import completion


def parley(url, *args):
    return subprocess.run([sys.executable, "-m", "parley", *args, "--database-url", url], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_log_prune_deletes_old_unrated_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    db = Database(url)
    old = datetime.now(UTC) - timedelta(days=45)
    CompletionRepository(db).add_many([completion("old", when=old), completion("rated", when=old), completion("new")])
    FeedbackRepository(db).rate("rated", "k", "up")
    result = parley(url, "log", "prune", "--older-than", "30")
    assert result.returncode == 0 and "deleted 1 log rows" in result.stdout
    assert CompletionRepository(db).get("old") is None and CompletionRepository(db).get("rated")
    assert "deleted 1" in parley(url, "log", "prune", "--older-than", "30", "--include-rated").stdout
    db.close()


def test_adapters_add_list_remove(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    assert parley(url, "adapters", "add", "--name", "ext", "--gguf", str(gguf), "--base-model", "m").returncode == 0
    assert "ext" in parley(url, "adapters", "list").stdout
    assert parley(url, "adapters", "remove", "ext").returncode == 0
    db = Database(url)
    assert AdapterRepository(db).get("ext").enabled is False
    db.close()
    bad = parley(url, "adapters", "add", "--name", "../evil", "--gguf", str(gguf))
    assert bad.returncode != 0
