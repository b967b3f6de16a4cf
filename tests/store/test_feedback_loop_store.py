"""The completion log, feedback, adapter registry and tuning runs, on real SQLite and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parley.store.adapters import AdapterRepository
from parley.store.completions import CompletionRepository
from parley.store.feedback import FeedbackFilter, FeedbackRepository, label_of
from parley.store.runs import TuneRunRepository


def completion(cid, *, when=None, key="k1", model="base", adapter=None, answer="An answer."):
    return {
        "id": cid, "created_at": when or datetime.now(UTC), "key_id": key, "kind": "chat", "model": model,
        "adapter": adapter, "profile": None, "messages": [{"role": "user", "content": f"Question {cid}?"}],
        "prompt": None, "answer": answer, "params": {"temperature": 0.2}, "decisions": [{"stage": "input"}],
        "guard": {"input": [], "output": []}, "prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 0,
        "ttft_ms": 12.5, "latency_ms": 80.0, "finish_reason": "stop", "outcome": "finished", "error": None,
    }  # fmt: skip


def test_completions_are_written_once_and_read_back(db):
    repo = CompletionRepository(db)
    assert repo.add_many([completion("c1"), completion("c2", adapter="tuned")]) == 2
    assert repo.add_many([completion("c1"), completion("c3")]) == 1  # a retried batch: c1 is not doubled
    row = repo.get("c1")
    assert row["messages"] == [{"role": "user", "content": "Question c1?"}] and row["params"] == {"temperature": 0.2}
    assert [r["id"] for r in repo.list(adapter="tuned")] == ["c2"]
    assert repo.get("nope") is None


def test_pruning_keeps_rated_completions_unless_told(db):
    repo, feedback = CompletionRepository(db), FeedbackRepository(db)
    old = datetime.now(UTC) - timedelta(days=40)
    repo.add_many([completion("old-rated", when=old), completion("old", when=old), completion("new")])
    feedback.rate("old-rated", "k1", "up")
    assert repo.prune(datetime.now(UTC) - timedelta(days=30)) == 1
    assert repo.get("old") is None and repo.get("old-rated") and repo.get("new")
    assert repo.prune(datetime.now(UTC) - timedelta(days=30), keep_rated=False) == 1
    assert repo.get("old-rated") is None and feedback.list(FeedbackFilter(completion_id="old-rated")) == []


@pytest.mark.parametrize(("rating", "label"), [("up", "good"), ("5", "good"), ("4", "good"), ("3", "neutral"),
                                               ("2", "bad"), ("1", "bad"), ("down", "bad")])  # fmt: skip
def test_ratings_map_to_labels(rating, label):
    assert label_of(rating) == label


def test_a_second_rating_by_the_same_rater_replaces_the_first(db):
    CompletionRepository(db).add_many([completion("c1")])
    feedback = FeedbackRepository(db)
    first, created = feedback.rate("c1", "k1", "down", correction="Better.", tags=["faq"])
    assert created and first["label"] == "bad" and first["correction"] == "Better."
    second, created = feedback.rate("c1", "k1", "4", comment="fine after all")
    assert not created and second["id"] == first["id"] and second["rating"] == 4 and second["correction"] is None
    other, created = feedback.rate("c1", "admin", "up")
    assert created and other["id"] != first["id"]
    assert len(feedback.list(FeedbackFilter(completion_id="c1"))) == 2


def test_feedback_filters(db):
    CompletionRepository(db).add_many([completion("a", adapter="tuned"), completion("b"), completion("c")])
    feedback = FeedbackRepository(db)
    feedback.rate("a", "k1", "up", tags=["faq", "ui"])
    feedback.rate("b", "k1", "down", correction="Fixed.", tags=["ui"])
    feedback.rate("c", "k2", "3")

    def ids(**f):
        return sorted(r["completion_id"] for r in feedback.list(FeedbackFilter(**f)))

    assert ids(label="good") == ["a"] and ids(label="neutral") == ["c"]
    assert ids(has_correction=True) == ["b"] and ids(has_correction=False) == ["a", "c"]
    assert ids(tag="ui") == ["a", "b"] and ids(tag="faq") == ["a"]
    assert ids(adapter="tuned") == ["a"] and ids(model="base") == ["a", "b", "c"]
    assert ids(rater="k2") == ["c"]
    assert ids(since=datetime.now(UTC) + timedelta(minutes=1)) == []


def test_rated_completions_come_with_all_their_ratings(db):
    CompletionRepository(db).add_many([completion("a"), completion("b"), completion("unrated")])
    feedback = FeedbackRepository(db)
    feedback.rate("a", "k1", "up")
    feedback.rate("a", "k2", "down", correction="Shorter.")
    feedback.rate("b", "k1", "5")
    rated = {c["id"]: sorted(r["rater"] for r in ratings) for c, ratings in feedback.rated_completions()}
    assert rated == {"a": ["k1", "k2"], "b": ["k1"]}


def test_the_adapter_registry(db):
    repo = AdapterRepository(db)
    assert repo.version() == (0, None)
    first = repo.register("tuned", "base", "/a/tuned.gguf", peft_path="/a/peft", scale=0.5)
    assert first.enabled and repo.get("tuned").scale == 0.5
    v1 = repo.version()
    again = repo.register("tuned", "base", "/b/tuned.gguf")
    assert again.gguf_path == "/b/tuned.gguf" and again.created_at == first.created_at and repo.version() != v1
    assert repo.set_enabled("tuned", False).enabled is False
    assert repo.set_enabled("nope", True) is None
    assert [a.name for a in repo.list()] == ["tuned"]


def test_tuning_runs_are_recorded(db):
    runs = TuneRunRepository(db)
    run_id = runs.start("tuned", "dpo", "base.gguf", {"pairs": 120, "dropped": {"too_long": 2}}, {"lr": 5e-4})
    assert runs.get(run_id)["status"] == "running"
    runs.finish(run_id, steps=30, losses=[0.69, 0.41, 0.2])
    runs.record_evaluation(run_id, {"preference_accuracy": 0.9})
    row = runs.latest("tuned")
    assert row["id"] == run_id and row["steps"] == 30 and row["losses"] == [0.69, 0.41, 0.2]
    assert row["status"] == "finished" and row["evaluation"] == {"preference_accuracy": 0.9}
