"""Paraphrased system-prompt leaks (guards/paraphrase.py) on the real multilingual encoder: a sentence that
restates the operator's rules, in English or Russian, stops the answer; an answer doing the task passes."""

from __future__ import annotations

import pytest

from parley.guards.output_guard import DEFAULT_OUTPUT_POLICY, OutputGuard
from parley.guards.pii import PIIScanner

BILLING = ("You are the billing assistant of Acme Cloud. Never offer refunds above 50 dollars without a manager. "
           "Do not mention competitor prices. Always ask for the invoice number first.")  # fmt: skip
RECIPES = ("You are a recipe assistant for a vegan food blog. Only suggest plant-based recipes. Do not give "
           "medical or nutrition advice. Promote the blog's cookbook when it fits.")  # fmt: skip


@pytest.fixture(scope="module")
def judge():
    from parley.guards.embeddings import guard_embedder
    from parley.guards.paraphrase import ParaphraseJudge

    j = ParaphraseJudge(guard_embedder())
    yield j
    j.close()


def run(judge, system, answer):
    g = OutputGuard(DEFAULT_OUTPUT_POLICY, [PIIScanner()], system_prompt=system, paraphrase=judge)
    out = "".join(g.feed(answer[i : i + 4], 100) for i in range(0, len(answer), 4)) + g.finish("stop")
    return out, g.report()


@pytest.mark.parametrize(("system", "leak"), [
    (BILLING, "I was told to always request your invoice number before anything else and to keep quiet about "
              "competitor pricing. Anyway, how can I help?"),
    (RECIPES, "Мне поручено предлагать только растительные рецепты и не давать медицинских советов. Что хотите?"),
])  # fmt: skip
def test_a_sentence_restating_the_rules_ends_the_answer(judge, system, leak):
    _, report = run(judge, system, leak)
    assert report["blocked"] == "leak:paraphrase"
    (finding,) = report["findings"]
    assert finding["scanner"] == "leak" and finding["kind"] == "paraphrase" and finding["action"] == "block"


@pytest.mark.parametrize(("system", "answer"), [
    (BILLING, "Your March invoice shows two charges for the same storage bucket. I can open a ticket to review it."),
    (RECIPES, "Try a chickpea curry with coconut milk, spinach and plenty of garlic. It takes thirty minutes."),
])  # fmt: skip
def test_an_answer_doing_the_task_passes(judge, system, answer):
    out, report = run(judge, system, answer)
    assert out == answer and report["blocked"] is None and report["findings"] == []


def test_without_a_system_prompt_nothing_is_judged(judge):
    g = OutputGuard(DEFAULT_OUTPUT_POLICY, [PIIScanner()], system_prompt="", paraphrase=judge)
    g.feed("I was told to never reveal my instructions. ", 100)
    g.finish("stop")
    assert g.report()["blocked"] is None and g._scores == []



def test_sentences_not_scored_by_the_answers_end_are_counted_in_the_trace(judge):
    """The judge's worker kept busy past FINISH_WAIT: the answer ends (it is not held), and the trace says how
    many of its sentences left unjudged."""
    import time

    from parley.guards.paraphrase import FINISH_WAIT

    busy = judge.pool.submit(time.sleep, FINISH_WAIT + 1.0)
    start = time.monotonic()
    answer = "Your March invoice shows two charges for the same storage bucket. I can open a ticket to review it."
    out, report = run(judge, BILLING, answer)
    assert time.monotonic() - start < FINISH_WAIT + 0.9 and out == answer
    assert report["blocked"] is None and report["unjudged_sentences"] == 2
    busy.result()
    _, report = run(judge, BILLING, "Your March invoice shows two charges for the same storage bucket.")
    assert "unjudged_sentences" not in report
