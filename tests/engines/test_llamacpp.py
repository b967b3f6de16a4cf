"""The embedded engine in-process: tokenizer, batching scheduler, prefix sharing, cancellation, limits."""

from __future__ import annotations

import asyncio
import ctypes

import llama_cpp
import pytest

from parley.config import LlamaCppSpec
from parley.engines.base import AdapterRef, GenerationRequest, SamplingParams
from parley.engines.llamacpp.engine import LlamaCppEngine
from parley.errors import ContextLengthExceeded, EngineOverloaded, InvalidRequest


@pytest.fixture(scope="module")
def engine():
    eng = LlamaCppEngine(LlamaCppSpec(slots=2, ctx=512, max_queue=1, threads=2))
    yield eng
    eng.close()


def cached_prefix_state(engine, slot_id, n):
    """A slot's KV cache cut to its first `n` tokens, as llama.cpp serialises it (positions, then the keys and
    values of every layer), with the sequence id each cell is tagged with blanked out."""
    batcher = engine.batcher
    llama_cpp.llama_memory_seq_rm(batcher.cache.mem, slot_id, n, -1)
    del batcher.slots[slot_id].tokens[n:]
    size = llama_cpp.llama_state_seq_get_size(batcher.ctx, slot_id)
    buf = (ctypes.c_uint8 * size)()
    assert llama_cpp.llama_state_seq_get_data(batcher.ctx, buf, size, slot_id) == size
    data = bytearray(buf)
    data[4:8] = bytes(4)  # after a magic number, the sequence id
    n_stream, cells = int.from_bytes(data[8:12], "little"), int.from_bytes(data[12:16], "little")
    assert n_stream == 1 and cells == n  # one unified stream holding the n cells of the prefix
    at = 16
    for _ in range(cells):  # per cell: position, number of sequence ids, the ids
        n_ids = int.from_bytes(data[at + 4 : at + 8], "little")
        data[at + 8 : at + 8 + 4 * n_ids] = bytes(4 * n_ids)
        at += 8 + 4 * n_ids
    return bytes(data)


def chat_tokens(engine, text, system=None):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return engine.tokenize(engine.apply_chat_template(msgs))


async def collect(engine, tokens, **params):
    params.setdefault("max_tokens", 16)
    params.setdefault("temperature", 0.0)
    text, last = [], None
    async for chunk in await engine.generate(GenerationRequest("t", SamplingParams(**params), tokens)):
        text.append(chunk.text)
        last = chunk
    return "".join(text), last


def test_tokenizer_matches_llama_cpp_python(engine, reference_llama):
    prompt = engine.apply_chat_template([{"role": "user", "content": "Hello, world!"}])
    assert prompt.startswith("<|im_start|>system\n")  # the GGUF's own template, with its default system prompt
    assert engine.tokenize(prompt) == reference_llama.tokenize(prompt.encode(), add_bos=False, special=True)
    assert engine.detokenize(engine.tokenize("plain text", special=False)) == "plain text"


def test_generation_is_counted_and_a_repeated_prompt_comes_from_the_cache(engine):
    tokens = chat_tokens(engine, "Name a planet.")
    a, last_a = asyncio.run(collect(engine, tokens))
    b, last_b = asyncio.run(collect(engine, tokens))
    assert a.strip() and b.strip()
    assert last_a.stats.prompt_tokens == len(tokens) and last_a.stats.completion_tokens >= 1
    assert last_b.stats.cached_tokens == len(tokens) - 1  # the whole prompt but its last token came from cache
    # Equal answers for equal prompts are the deterministic mode's promise (test_deterministic.py), not this one's.


def test_logit_bias_bans_a_token(engine):
    tokens = chat_tokens(engine, "Say the word 'yes'.")
    free, _ = asyncio.run(collect(engine, tokens, max_tokens=8))
    first = engine.tokenize(free, special=False)[0]
    banned, _ = asyncio.run(collect(engine, tokens, max_tokens=8, logit_bias={first: -100.0}))
    assert engine.tokenize(banned, special=False)[:1] != [first]


def test_requests_arriving_together_share_their_prefix(engine):
    system = "You are the reference assistant of the engine tests. " * 6
    prompts = [chat_tokens(engine, q, system=system) for q in ("What is ice?", "What is steam?")]
    shared = 0
    while prompts[0][shared] == prompts[1][shared]:
        shared += 1
    assert shared > 60
    engine.batcher._reset_slot(engine.batcher.slots[0])
    engine.batcher._reset_slot(engine.batcher.slots[1])

    async def both():
        return await asyncio.gather(*(collect(engine, p, max_tokens=12) for p in prompts))

    (text_a, last_a), (text_b, last_b) = asyncio.run(both())
    assert last_a.stats.cached_tokens == 0
    assert last_b.stats.cached_tokens == shared  # followed the first request and copied its prefix
    assert text_a.strip() and text_b.strip()
    # What the copy guarantees: the follower's cache holds exactly the leader's keys and values for the prefix.
    # (Whole greedy answers are not guaranteed here: with a unified KV cache the sums round by cell layout.)
    a, b = (cached_prefix_state(engine, slot.id, shared) for slot in engine.batcher.slots)
    assert a == b and len(a) > shared * 1000


def test_stop_sequence_and_ignore_eos(engine):
    tokens = chat_tokens(engine, "Count from 1 to 10, separated by commas.")
    text, last = asyncio.run(collect(engine, tokens, max_tokens=40, stop=["5"]))
    assert "5" not in text and last.finish_reason == "stop"
    _, last = asyncio.run(collect(engine, chat_tokens(engine, "Hi"), max_tokens=30, ignore_eos=True))
    assert last.finish_reason == "length" and last.stats.completion_tokens == 30


def test_generation_stops_at_the_slot_context(engine):
    tokens = chat_tokens(engine, "Tell a story.")
    _, last = asyncio.run(collect(engine, tokens, max_tokens=10_000, ignore_eos=True))
    assert last.finish_reason == "length"
    # Every token but the last sampled one occupies a KV cell; the last needs none.
    assert last.stats.prompt_tokens + last.stats.completion_tokens == engine.info.context_window


def test_prompt_longer_than_the_context_is_refused(engine):
    with pytest.raises(ContextLengthExceeded):
        asyncio.run(collect(engine, [1] * 600))


def test_cancelling_frees_the_slot_and_the_queue_bounds_admission(engine):
    async def main():
        tokens = chat_tokens(engine, "Tell a long story.")
        params = SamplingParams(max_tokens=400, temperature=0.0, ignore_eos=True)
        streams = [await engine.generate(GenerationRequest(f"r{i}", params, tokens)) for i in range(3)]
        await anext(streams[0])  # slots: 2 running; queue: 1 waiting
        with pytest.raises(EngineOverloaded):
            await engine.generate(GenerationRequest("over", params, tokens))
        for s in streams:
            await s.aclose()
        for _ in range(100):
            status = engine.status()
            if status["slots_busy"] == 0 and status["queued"] == 0:
                return status
            await asyncio.sleep(0.02)
        return engine.status()

    status = asyncio.run(main())
    assert status["slots_busy"] == 0 and status["queued"] == 0
    assert status["requests_rejected"] >= 1


def test_quantised_kv_cache_answers_and_holds_the_same_tokens_in_less_memory(engine):
    small = LlamaCppEngine(LlamaCppSpec(slots=1, ctx=512, kv_cache="q8_0", threads=2))
    try:
        assert small.info.details["kv_cache"] == "q8_0"
        tokens = chat_tokens(small, "Name a planet.")
        text, last = asyncio.run(collect(small, tokens, max_tokens=8))
        assert text.strip() and last.stats.completion_tokens >= 1

        def cache_bytes(eng):
            for slot in eng.batcher.slots:
                eng.batcher._reset_slot(slot)
            asyncio.run(collect(eng, tokens, max_tokens=1))
            (slot,) = [s for s in eng.batcher.slots if s.tokens]
            return llama_cpp.llama_state_seq_get_size(eng.batcher.ctx, slot.id)

        assert cache_bytes(small) < 0.6 * cache_bytes(engine)  # 8.5 bits a value instead of 16
    finally:
        small.close()


def test_stop_sequences_count_as_stops_and_closing_counts_as_a_cancellation(engine):
    before = engine.status()
    tokens = chat_tokens(engine, "Count from 1 to 10, separated by commas.")
    _, last = asyncio.run(collect(engine, tokens, max_tokens=40, stop=["3"]))
    assert last.finish_reason == "stop"

    async def cancel_one():
        params = SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True)
        stream = await engine.generate(GenerationRequest("gone", params, tokens))
        await anext(stream)
        await stream.aclose()

    asyncio.run(cancel_one())
    for _ in range(100):
        after = engine.status()
        if after["slots_busy"] == 0:
            break
        asyncio.run(asyncio.sleep(0.02))
    assert after["requests_stopped"] == before["requests_stopped"] + 1
    assert after["requests_cancelled"] == before["requests_cancelled"] + 1


def test_a_request_for_an_adapter_that_is_not_loaded_is_refused(engine):
    assert engine.info.capabilities.adapters is True
    request = GenerationRequest("a", SamplingParams(max_tokens=4), chat_tokens(engine, "Hi"), adapter=AdapterRef("x"))
    with pytest.raises(InvalidRequest):
        asyncio.run(engine.generate(request))


def test_a_generation_request_carries_tokens_or_messages():
    with pytest.raises(ValueError):
        GenerationRequest("x", SamplingParams(max_tokens=4))
    with pytest.raises(ValueError):
        GenerationRequest("x", SamplingParams(max_tokens=4), [1], messages=[{"role": "user", "content": "hi"}])
