"""The deterministic mode: a request's greedy answer does not depend on what else runs or on the prefix cache.

This is guaranteed by construction (per-slot KV streams, calls shaped by `batches`), so the tests assert exact
equality, on whatever CPU they run: the answers are compared with the same engine's own answers.
"""

from __future__ import annotations

import asyncio

import pytest

from parley.config import LlamaCppSpec
from parley.engines.llamacpp.engine import LlamaCppEngine
from tests.engines.test_llamacpp import chat_tokens, collect

SYSTEM = "You are the reference assistant of the determinism tests. Answer briefly and precisely. " * 10
QUESTIONS = ["What is ice?", "What is steam?", "Name a planet.", "What is a noun?"]
# Long enough that its KV cache passes 256 cells: a lone decode would take ggml's split-KV kernel.
LONG = "Summarise these operator notes: " + " ".join(f"router {i} rebooted after a firmware update." for i in range(45))


@pytest.fixture(scope="module")
def det():
    eng = LlamaCppEngine(LlamaCppSpec(slots=4, ctx=1024, threads=2, deterministic=True))
    yield eng
    eng.close()


def answers(engine, prompts, *, together):
    async def one(tokens):
        return (await collect(engine, tokens, max_tokens=24))[0]

    async def main():
        if together:
            return list(await asyncio.gather(*(one(p) for p in prompts)))
        return [await one(p) for p in prompts]

    return asyncio.run(main())


def clear_caches(engine):
    for slot in engine.batcher.streams:
        engine.batcher._reset_slot(slot)


def test_the_engine_runs_split_streams(det):
    status = det.status()
    assert status["kv_layout"] == "split" and status["deterministic"] is True


def test_greedy_answers_do_not_depend_on_concurrency_or_the_prefix_cache(det):
    prompts = [chat_tokens(det, q, system=SYSTEM) for q in QUESTIONS] + [chat_tokens(det, LONG)]
    assert len(prompts[-1]) > 300 and len(prompts[0]) > 150
    clear_caches(det)
    alone_fresh = answers(det, prompts, together=False)  # each computes the system prompt or reuses a slot's
    assert all(a.strip() for a in alone_fresh)
    copies = det.status()["prefix_copies"]
    together = answers(det, prompts, together=True)  # followers copy a leader's prefix; mixed batches
    assert together == alone_fresh
    clear_caches(det)
    together_fresh = answers(det, list(reversed(prompts)), together=True)
    assert together_fresh == list(reversed(alone_fresh))
    assert det.status()["prefix_copies"] > copies  # the shared system prompt was copied, not recomputed
    again = answers(det, prompts, together=False)  # every prompt but its last token now cached
    assert again == alone_fresh


def test_seeded_sampling_repeats(det):
    tokens = chat_tokens(det, "Write a word.")
    runs = [asyncio.run(collect(det, tokens, temperature=1.0, seed=42, max_tokens=12))[0] for _ in range(2)]
    assert runs[0] == runs[1] and runs[0].strip()
