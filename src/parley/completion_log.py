"""The completion log: a turn-end observer that records every turn, and the writer that stores the records.

The observer only builds a row and queues it; a writer thread inserts queued rows in batches, off the request
path, so logging never slows or breaks an answer. A failed write (the database is down) is counted and retried
with backoff; nothing is dropped: past `max_pending` queued rows the oldest are spilled to a JSONL file in the
data directory, and at shutdown whatever is still queued goes there too; spilled rows are written once the
database takes writes again (also after a restart).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from parley.pipeline.context import TurnContext
from parley.pipeline.turn import Turn
from parley.pipeline.verdicts import guard_summary
from parley.store.completions import CompletionRepository

log = logging.getLogger(__name__)

BATCH = 200
PRUNE_EVERY_S = 3600.0


def row_of(turn: Turn, ctx: TurnContext) -> dict[str, Any]:
    """The log row of a turn: what the model saw and what the client got, as the guards left them."""
    messages = [{"role": m.role, "content": m.content} for m in turn.messages] or None
    if messages and turn.guard.system_prompt is not None:  # the operator's prompt, not the planted canary
        first_system = next(m for m in messages if m["role"] == "system")
        first_system["content"] = turn.guard.system_prompt
    profile = turn.profile.name if turn.profile is not None else None
    params: dict[str, Any] = {}
    if turn.params is not None:
        params = {k: v for k, v in asdict(turn.params).items() if k != "grammar"}
        params["constrained"] = turn.params.grammar is not None
        params["logit_bias"] = {str(k): v for k, v in turn.params.logit_bias.items()}
        if adaptive := turn.notes.get("params", {}).get("adaptive"):  # the arm a rating of this turn rewards
            params["arm"], params["bucket"] = adaptive["arm"], adaptive["bucket"]
    decisions = [entry.model_dump(mode="json") for entry in turn.trace]
    for entry in decisions:  # the raw text is before the output guard: never logged
        entry["detail"].pop("raw_text", None)
    guard = guard_summary(turn)
    timing = turn.timing
    error = f"{type(turn.error).__name__}: {turn.error}"[:500] if turn.error is not None else None
    return {
        "id": turn.log_id, "created_at": datetime.fromtimestamp(timing.started_at, UTC),
        "key_id": ctx.key.id if ctx.key is not None else None, "kind": turn.kind,
        "model": ctx.engine.info.id if ctx.engine is not None else turn.request.model,
        "adapter": turn.adapter.name if turn.adapter is not None else None, "profile": profile,
        "messages": messages, "prompt": turn.prompt if turn.kind == "completion" else None, "answer": turn.text,
        "params": params, "decisions": decisions, "guard": guard,
        "prompt_tokens": turn.usage.prompt_tokens, "completion_tokens": turn.usage.completion_tokens,
        "cached_tokens": turn.usage.cached_tokens,
        "ttft_ms": round(timing.ttft_s * 1000, 3) if timing.ttft_s is not None else None,
        "latency_ms": round(timing.latency_s * 1000, 3) if timing.latency_s is not None else None,
        "finish_reason": turn.finish_reason, "outcome": turn.outcome or "failed", "error": error,
    }  # fmt: skip


@dataclass
class LogCounters:
    queued: int = 0
    written: int = 0
    write_failures: int = 0  # failed attempts (each is retried)
    spilled: int = 0  # rows parked in the spill file while the database was unreachable
    refused: int = 0  # rows the database would not take (kept in the .refused.jsonl file beside the spill file)
    pruned: int = 0


class CompletionLog:
    def __init__(
        self, repo: CompletionRepository, spill_path: Path, *, retention_days: int = 30, max_pending: int = 20_000
    ) -> None:
        self.repo = repo
        self.spill_path = spill_path
        self.retention_days = retention_days
        self.max_pending = max_pending
        self.counters = LogCounters()
        self._queue: deque[dict[str, Any]] = deque()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = False
        self._failing_since: float | None = None
        self._next_prune = time.monotonic() + 60.0
        self._thread = threading.Thread(target=self._run, name="parley-log-writer", daemon=True)

    # ---- the request side -------------------------------------------------------------------------

    async def observe(self, turn: Turn, ctx: TurnContext) -> None:
        """Turn-end observer: queue the turn's row (the writer stores it)."""
        self.put(row_of(turn, ctx))

    def put(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._queue.append(row)
            self._pending.add(row["id"])
            self.counters.queued += 1
            overflow = len(self._queue) - self.max_pending
            spill = [self._queue.popleft() for _ in range(max(overflow, 0))]
        if spill:
            self._spill(spill)
        self._wake.set()

    def is_pending(self, completion_id: str) -> bool:
        with self._lock:
            return completion_id in self._pending

    async def wait_written(self, completion_id: str, timeout: float = 5.0) -> bool:
        """Wait until a queued row is in the database; False if it is not queued, or still not written."""

        def wait() -> bool:
            with self._written:
                return self._written.wait_for(lambda: completion_id not in self._pending, timeout)

        return self.is_pending(completion_id) and await asyncio.to_thread(wait)

    def status(self) -> dict[str, Any]:
        backlog = self.backlog()
        failing = round(time.monotonic() - self._failing_since, 1) if self._failing_since else 0.0
        return {**asdict(self.counters), "backlog": backlog, "spill_file_rows": self._spilled_rows(),
                "failing": self._failing_since is not None, "failing_for_s": failing}  # fmt: skip

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued if the database lets us within `timeout`; spill the rest for the next start."""
        deadline = time.monotonic() + timeout
        while self.backlog() and time.monotonic() < deadline and self._failing_since is None:
            self._wake.set()
            time.sleep(0.05)
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(deadline - time.monotonic(), 1.0))
        with self._lock:
            rest = list(self._queue)
            self._queue.clear()
        if rest:
            self._spill(rest)

    def backlog(self) -> int:
        with self._lock:
            return len(self._queue)

    # ---- the writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            while not self._stop:
                with self._lock:
                    batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                if not batch:
                    if not self._replay_spill():
                        break
                    continue
                if self._write(batch):
                    backoff = 0.5
                    continue
                with self._lock:  # back at the front, in order, for the next attempt
                    self._queue.extendleft(reversed(batch))
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            self._maybe_prune()

    def _write(self, batch: list[dict[str, Any]]) -> bool:
        try:
            self.repo.add_many(batch)
        except (OperationalError, InterfaceError) as exc:  # the database is unreachable: keep the rows, retry
            self.counters.write_failures += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning("completion log: cannot write %d rows (%s); retrying", len(batch), exc)
            return False
        except SQLAlchemyError:  # the database refused the batch: find the rows it refuses, keep them aside
            self.counters.write_failures += 1
            try:
                batch = self._write_one_by_one(batch)
            except (OperationalError, InterfaceError):  # gone meanwhile: retry all (written rows are skipped)
                return False
        if self._failing_since is not None:
            log.info("completion log: writing again after %.1f s", time.monotonic() - self._failing_since)
            self._failing_since = None
        with self._written:
            self.counters.written += len(batch)
            self._pending.difference_update(r["id"] for r in batch)
            self._written.notify_all()
        return True

    def _write_one_by_one(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        written, refused = [], []
        for row in batch:
            try:
                self.repo.add_many([row])
                written.append(row)
            except (OperationalError, InterfaceError):
                raise
            except SQLAlchemyError as exc:
                log.error("completion log: row %s refused by the database (%s); kept in %s", row["id"], exc,
                          self.refused_path)  # fmt: skip
                refused.append(row)
        if refused:
            self._append(self.refused_path, refused)
            self.counters.refused += len(refused)
            with self._written:
                self._pending.difference_update(r["id"] for r in refused)
                self._written.notify_all()
        return written

    @property
    def refused_path(self) -> Path:
        return self.spill_path.with_name(self.spill_path.stem + ".refused.jsonl")

    def _maybe_prune(self) -> None:
        if self.retention_days <= 0 or time.monotonic() < self._next_prune or self._failing_since is not None:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        try:
            self.counters.pruned += self.repo.prune(datetime.now(UTC) - timedelta(days=self.retention_days))
        except SQLAlchemyError as exc:  # pruning waits for the next hour; the log itself is unaffected
            log.warning("completion log: pruning failed: %s", exc)

    # ---- the spill file ------------------------------------------------------------------------------

    def _spill(self, rows: list[dict[str, Any]]) -> None:
        self._append(self.spill_path, rows)
        self.counters.spilled += len(rows)
        log.warning("completion log: %d rows parked in %s until the database takes them", len(rows), self.spill_path)

    def _append(self, path: Path, rows: list[dict[str, Any]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, path.open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({**row, "created_at": row["created_at"].isoformat()}) + "\n")

    def _spilled_rows(self) -> int:
        try:
            with self.spill_path.open(encoding="utf-8") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def _replay_spill(self) -> bool:
        """Queue the spill file's rows again (the database is taking writes); True if there were any."""
        if self._failing_since is not None or not self.spill_path.exists():
            return False
        # Replicas may share the data directory: each claims the file under a name of its own; the rename is
        # atomic, so exactly one replica replays each row (another's rows too: any replica can write them).
        claimed = self.spill_path.with_suffix(f".replaying-{uuid.uuid4().hex[:12]}")
        try:
            self.spill_path.replace(claimed)
        except FileNotFoundError:  # another replica claimed it first
            return False
        rows = []
        for line in claimed.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                row["created_at"] = datetime.fromisoformat(row["created_at"])
                rows.append(row)
        with self._lock:
            self._queue.extend(rows)
            self._pending.update(r["id"] for r in rows)
        claimed.unlink()
        return bool(rows)


async def logged(repo: CompletionRepository, log: CompletionLog | None, completion_id: str) -> dict[str, Any] | None:
    """A logged completion; one answered a moment ago may still be on its way to the database: wait for it."""
    row = await asyncio.to_thread(repo.get, completion_id)
    if row is None and log is not None and await log.wait_written(completion_id):
        row = await asyncio.to_thread(repo.get, completion_id)
    return row
