"""Measuring an adapter on data it was not trained on.

- Preference accuracy: the share of (chosen, rejected) pairs where the chosen answer gets the higher
  log-likelihood given the prompt, and the mean margin; base and adapter, in PyTorch.
- Answer match: on question/answer pairs with a key fact, how often the greedy answer contains the fact; base
  and adapter, on the embedded llama.cpp engine with the GGUF adapter (the path that serves it).
- Agreement: the GGUF adapter in llama.cpp against the PEFT adapter in PyTorch, on next-token logits.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from parley.tune.base import load_base

FAQ = Path(__file__).parent / "data" / "parley_faq.jsonl"


def faq(split: str = "all") -> list[dict[str, Any]]:
    """The Parley FAQ: 65 facts, three phrasings each. `train`: phrasings 0 and 1; `test`: phrasing 2, so a
    test question is one never trained on, about a fact the training saw in other words."""
    rows = [json.loads(line) for line in FAQ.read_text(encoding="utf-8").splitlines() if line.strip()]
    if split == "train":
        return [r for r in rows if r["variant"] < 2]
    if split == "test":
        return [r for r in rows if r["variant"] == 2]
    return rows


def load_with_adapter(gguf: Path, peft_dir: Path, cache_root: Path) -> tuple[Any, Any]:
    from peft import PeftModel

    model, tokenizer = load_base(gguf, cache_root)
    return PeftModel.from_pretrained(model, str(peft_dir)).eval(), tokenizer


def completion_logprob(model: Any, tokenizer: Any, prompt: list[dict[str, str]], answer: str) -> float:
    """Sum of log-probabilities of the answer's tokens after the templated prompt."""
    import torch

    context = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = context + answer + (tokenizer.eos_token or "")
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    targets = torch.tensor(ids[1:])
    token_logp = logp[torch.arange(len(targets)), targets]
    return float(token_logp[len(context_ids) - 1 :].sum())


def preference(model: Any, tokenizer: Any, pairs: list[dict[str, Any]]) -> dict[str, float]:
    margins = []
    for pair in pairs:
        chosen = completion_logprob(model, tokenizer, pair["prompt"], pair["chosen"][-1]["content"])
        rejected = completion_logprob(model, tokenizer, pair["prompt"], pair["rejected"][-1]["content"])
        margins.append(chosen - rejected)
    wins = [m > 0 for m in margins]
    return {"accuracy": float(np.mean(wins)) if wins else 0.0, "mean_margin": float(np.mean(margins or [0.0])),
            "pairs": len(margins)}  # fmt: skip


def compare_preference(pairs: list[dict[str, Any]], gguf: Path, peft_dir: Path, cache_root: Path) -> dict[str, Any]:
    model, tokenizer = load_with_adapter(gguf, peft_dir, cache_root)
    tuned = preference(model, tokenizer, pairs)
    with model.disable_adapter():
        base = preference(model, tokenizer, pairs)
    return {"base": base, "adapter": tuned, "gain_points": round(100 * (tuned["accuracy"] - base["accuracy"]), 1)}


def answer_match(qa: list[dict[str, Any]], gguf: Path, adapter_gguf: Path, max_tokens: int = 48) -> dict[str, Any]:
    """Greedy answers on the embedded engine, base and with the adapter; a match holds the key fact."""
    from parley.config import LlamaCppSpec
    from parley.engines.base import AdapterRef, GenerationRequest, SamplingParams
    from parley.engines.llamacpp.engine import LlamaCppEngine

    engine = LlamaCppEngine(LlamaCppSpec(model=gguf, slots=4, ctx=1024))
    ref = AdapterRef("eval", 1.0, "eval")

    async def answers(adapter: AdapterRef | None) -> list[str]:
        async def one(question: str) -> str:
            messages = [{"role": "user", "content": question}]
            tokens = engine.tokenize(engine.apply_chat_template(messages))
            request = GenerationRequest("eval", SamplingParams(max_tokens=max_tokens, temperature=0.0), tokens,
                                        adapter=adapter)  # fmt: skip
            return "".join([c.text async for c in await engine.generate(request)])

        return list(await asyncio.gather(*(one(r["question"]) for r in qa)))

    try:
        asyncio.run(engine.load_adapter(ref, str(adapter_gguf)))
        base, tuned = asyncio.run(answers(None)), asyncio.run(answers(ref))
    finally:
        engine.close()

    def rate(texts: list[str]) -> float:
        return float(np.mean([r["key"].lower() in t.lower() for r, t in zip(qa, texts, strict=True)]))

    examples = [{"question": r["question"], "key": r["key"], "base": b, "adapter": t}
                for r, b, t in zip(qa, base, tuned, strict=True)][:5]  # fmt: skip
    return {"questions": len(qa), "base": rate(base), "adapter": rate(tuned), "examples": examples}


def agreement(texts: list[str], gguf: Path, peft_dir: Path, adapter_gguf: Path, cache_root: Path) -> dict[str, float]:
    """Over every position of `texts`: how often llama.cpp with the GGUF adapter and PyTorch with the PEFT
    adapter pick the same next token, and how well the adapter's effect on the logits correlates."""
    import llama_cpp
    import torch

    from parley.engines.llamacpp.gguf_model import GGUFModel

    model, _ = load_with_adapter(gguf, peft_dir, cache_root)
    native = GGUFModel(gguf)
    adapter = llama_cpp.llama_adapter_lora_init(native.ptr, str(adapter_gguf).encode())
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_threads, params.n_threads_batch = 1024, 2, 2
    ctx = llama_cpp.llama_init_from_model(native.ptr, params)
    same, total, correlations = 0, 0, []
    try:
        for text in texts:
            ids = native.tokenize(text, add_special=False, parse_special=True)
            with torch.no_grad():
                torch_tuned = model(torch.tensor([ids])).logits[0].float().numpy()
                with model.disable_adapter():
                    torch_base = model(torch.tensor([ids])).logits[0].float().numpy()
            native_tuned = _native_logits(ctx, native, ids, adapter)
            native_base = _native_logits(ctx, native, ids, None)
            same += int((native_tuned.argmax(1) == torch_tuned.argmax(1)).sum())
            total += len(ids)
            delta_torch, delta_native = (torch_tuned - torch_base).ravel(), (native_tuned - native_base).ravel()
            correlations.append(np.corrcoef(delta_torch, delta_native)[0, 1])
    finally:
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_adapter_lora_free(adapter)
        native.close()
    return {"top1_agreement": same / total, "delta_correlation": float(np.mean(correlations)), "positions": total}


def _native_logits(ctx: Any, model: Any, ids: list[int], adapter: Any) -> np.ndarray:
    import ctypes

    import llama_cpp

    if adapter is None:
        llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
    else:
        llama_cpp.llama_set_adapters_lora(ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter), 1,
                                          (ctypes.c_float * 1)(1.0))  # fmt: skip
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    batch = llama_cpp.llama_batch_init(len(ids), 0, 1)
    try:
        for i, token in enumerate(ids):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, i, 1, True
            batch.seq_id[i][0] = 0
        batch.n_tokens = len(ids)
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return np.stack([np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(model.n_vocab,)).copy()
                         for i in range(len(ids))])  # fmt: skip
    finally:
        llama_cpp.llama_batch_free(batch)
