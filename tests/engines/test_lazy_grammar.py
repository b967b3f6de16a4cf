"""Parley's lazy grammar (engines/llamacpp/lazy.py): free text until the trigger, the grammar right after it.
The trigger is taken from the same engine's own unconstrained greedy answer, so the test holds on any CPU."""

from __future__ import annotations

import asyncio

import pytest

from parley.config import LlamaCppSpec
from parley.engines.base import GenerationRequest, SamplingParams
from parley.engines.llamacpp.engine import LlamaCppEngine
from parley.errors import InvalidRequest

PROMPT = "Write two sentences about the sea."
TAIL = " ZEBRA-42!"


@pytest.fixture(scope="module")
def engine():
    eng = LlamaCppEngine(LlamaCppSpec(slots=2, ctx=512, max_queue=4, threads=2, deterministic=True))
    yield eng
    eng.close()


async def generate(engine, tokens, **params):
    params.setdefault("max_tokens", 40)
    params.setdefault("temperature", 0.0)
    pieces = []
    async for chunk in await engine.generate(GenerationRequest("t", SamplingParams(**params), tokens)):
        pieces.append(chunk.text)
    return "".join(pieces), chunk


def prompt_tokens(engine):
    return engine.tokenize(engine.apply_chat_template([{"role": "user", "content": PROMPT}]))


def free_tokens(engine, tokens):
    """The unconstrained greedy answer, token by token (pieces as the engine decodes them)."""
    from parley.engines.base import SamplingParams as P

    async def run():
        seq_tokens = []
        generation = await engine.generate(GenerationRequest("free", P(max_tokens=40, temperature=0.0), tokens))
        async for chunk in generation:
            seq_tokens.append(chunk.text)
        return seq_tokens

    return asyncio.run(run())


@pytest.mark.parametrize("cut", ["token_end", "mid_token"])
def test_grammar_applies_right_after_the_trigger(engine, cut):
    tokens = prompt_tokens(engine)
    free, _ = asyncio.run(generate(engine, tokens))
    pieces = [p for p in free_tokens(engine, tokens) if p]
    assert "".join(pieces) == free
    # A trigger that ends where a token ends, or one that ends inside a token (the overshooting token must be
    # replaced by the text up to the trigger's end).
    k = next(i for i in range(3, len(pieces)) if len(pieces[i].strip()) >= 2)
    prefix = "".join(pieces[:k])
    trigger = prefix + (pieces[k] if cut == "token_end" else pieces[k][: len(pieces[k]) - 1])
    trigger = trigger[-12:]
    start = engine.batcher.counters.lazy_grammar_armed
    rewrites = engine.batcher.counters.lazy_grammar_rewrites
    text, last = asyncio.run(generate(engine, tokens, grammar=f'root ::= "{TAIL}"', grammar_trigger=trigger))
    end = free.index(trigger) + len(trigger)
    assert text == free[:end] + TAIL  # the same free text up to the trigger, then only what the grammar allows
    assert last.finish_reason == "stop"  # the grammar's end lets the model end
    assert engine.batcher.counters.lazy_grammar_armed == start + 1
    assert engine.batcher.counters.lazy_grammar_rewrites == rewrites + (cut == "mid_token")


def test_no_trigger_no_grammar(engine):
    tokens = prompt_tokens(engine)
    free, _ = asyncio.run(generate(engine, tokens))
    text, _ = asyncio.run(generate(engine, tokens, grammar='root ::= "x"', grammar_trigger="never-written-§§"))
    assert text == free


def test_a_broken_lazy_grammar_is_refused_before_generation(engine):
    with pytest.raises(InvalidRequest):
        asyncio.run(generate(engine, prompt_tokens(engine), grammar="root ::= (", grammar_trigger="the"))
