"""LoRA adapters on the embedded engine: loaded while serving, applied per request, grouped per call, cached
apart, unloaded once unused. A random adapter stands in for a trained one (serving does not depend on values)."""

from __future__ import annotations

import asyncio

import pytest

from parley.config import LlamaCppSpec
from parley.engines.base import AdapterRef, GenerationRequest, SamplingParams
from parley.engines.llamacpp.engine import LlamaCppEngine
from parley.errors import InvalidRequest
from parley.tune.gguf_lora import random_lora_state, write_gguf_lora
from tests.engines.test_llamacpp import chat_tokens

TUNED = AdapterRef("tuned", 1.0, "v1")


def make_adapter(engine, path, seed=0):
    m = engine.model
    state = random_lora_state(n_layer=m.n_layer, n_embd=m.n_embd, n_head=m.n_head, n_head_kv=m.n_head_kv, seed=seed)
    return write_gguf_lora(path, state, alpha=16, n_head=m.n_head, n_head_kv=m.n_head_kv)


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    eng = LlamaCppEngine(LlamaCppSpec(slots=4, ctx=512, threads=2, deterministic=True))
    path = make_adapter(eng, tmp_path_factory.mktemp("adapters") / "tuned.gguf")
    asyncio.run(eng.load_adapter(TUNED, str(path)))
    yield eng
    eng.close()


async def generate(engine, tokens, adapter=None, max_tokens=16):
    request = GenerationRequest("a", SamplingParams(max_tokens=max_tokens, temperature=0.0), tokens, adapter=adapter)
    text, last = [], None
    async for chunk in await engine.generate(request):
        text.append(chunk.text)
        last = chunk
    return "".join(text), last


def test_an_adapter_changes_the_answer_and_is_listed(det):
    tokens = chat_tokens(det, "Name a planet.")
    base, _ = asyncio.run(generate(det, tokens))
    tuned, _ = asyncio.run(generate(det, tokens, TUNED))
    assert base.strip() and tuned.strip() and base != tuned
    assert det.status()["adapters_loaded"] == ["tuned"]


def test_base_and_adapter_requests_at_once_stay_apart(det):
    prompts = [chat_tokens(det, q) for q in ("Name a planet.", "What is ice?", "Say hello.")]
    jobs = [(p, a) for p in prompts for a in (None, TUNED)]
    alone = [asyncio.run(generate(det, p, a))[0] for p, a in jobs]

    async def together():
        return [r[0] for r in await asyncio.gather(*(generate(det, p, a) for p, a in jobs))]

    before = det.status()["adapter_switches"]
    assert asyncio.run(together()) == alone  # deterministic engine: any contamination would show
    assert det.status()["adapter_switches"] > before  # calls alternated between the base and the adapter


def test_a_cached_prefix_is_reused_only_under_the_same_adapter(det):
    for slot in det.batcher.streams:
        det.batcher._reset_slot(slot)
    tokens = chat_tokens(det, "Which is the largest ocean?")
    asyncio.run(generate(det, tokens, max_tokens=2))  # the whole prompt cached, under the base model
    _, under_adapter = asyncio.run(generate(det, tokens, TUNED, max_tokens=2))
    assert under_adapter.stats.cached_tokens == 0
    _, again = asyncio.run(generate(det, tokens, TUNED, max_tokens=2))
    assert again.stats.cached_tokens == len(tokens) - 1


def test_an_unloaded_adapter_is_refused_and_freed(det, tmp_path):
    other = AdapterRef("other", 1.0, "v1")
    asyncio.run(det.load_adapter(other, str(make_adapter(det, tmp_path / "other.gguf", seed=1))))
    assert "other" in det.status()["adapters_loaded"]
    asyncio.run(det.unload_adapter(other))
    with pytest.raises(InvalidRequest):
        asyncio.run(generate(det, chat_tokens(det, "Hi"), other))
    assert "other" not in det.status()["adapters_loaded"]


def test_a_file_that_is_not_an_adapter_is_refused(det, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ValueError):
        asyncio.run(det.load_adapter(AdapterRef("bad"), str(bad)))
    with pytest.raises(ValueError):
        asyncio.run(det.load_adapter(AdapterRef("missing"), str(tmp_path / "missing.gguf")))
