"""Batch invariance: does a request's greedy answer depend on what else the engine is running?

Part 1 (kernels): one sequence's logits computed alone and in other batch shapes, straight on llama.cpp's
low-level API, for each KV layout. It shows which shapes change the floating-point sums (max |Δlogit|).
Part 2 (engine): the embedded engine in each mode answers N greedy prompts one at a time and then all at once,
over several rounds; it counts the answers that differ from the same prompt's answer alone.

    python bench/invariance.py [--rounds 3] [--slots 16]

Writes bench/results/invariance.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

import llama_cpp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS

from parley.config import LlamaCppSpec
from parley.engines.base import GenerationRequest, SamplingParams
from parley.engines.llamacpp.engine import LlamaCppEngine, embedded_model_path
from parley.engines.llamacpp.gguf_model import GGUFModel

WORDS = ["apple", "banana", "cherry", "dragon", "eagle", "falcon", "guitar", "harbor",
         "island", "jungle", "kettle", "lemon", "mango", "nectar", "orange", "pepper"]  # fmt: skip


class Probe:
    """A bare context: decode token lists for sequences in chosen batch shapes, return the logits wanted."""

    def __init__(self, model: GGUFModel, *, unified: bool, slots: int = 4, ctx: int = 2048) -> None:
        p = llama_cpp.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max = ctx * slots, 4096, 512, slots
        p.n_threads = p.n_threads_batch = 2
        p.kv_unified, p.no_perf = unified, True
        p.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.model, self.ctx = model, llama_cpp.llama_init_from_model(model.ptr, p)
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(4096, 0, 1)

    def decode(self, items: list[tuple[int, int, int, bool]]) -> dict[int, np.ndarray]:
        for i, (seq, pos, tok, logits) in enumerate(items):
            b = self.batch
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, logits
            b.seq_id[i][0] = seq
        self.batch.n_tokens = len(items)
        assert llama_cpp.llama_decode(self.ctx, self.batch) == 0
        n = self.model.n_vocab
        return {
            seq: np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, i), shape=(n,)).copy()
            for i, (seq, _, _, logits) in enumerate(items) if logits
        }  # fmt: skip

    def prefill(self, prompts: dict[int, list[int]], chunk: int) -> dict[int, np.ndarray]:
        done = dict.fromkeys(prompts, 0)
        out: dict[int, np.ndarray] = {}
        while any(done[s] < len(p) for s, p in prompts.items()):
            items = []
            for s, p in prompts.items():
                take = p[done[s] : done[s] + chunk]
                items += [(s, done[s] + j, t, done[s] + j == len(p) - 1) for j, t in enumerate(take)]
                done[s] += len(take)
            out.update(self.decode(items))
        return out

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.mem, True)

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)


def kernel_probe(model: GGUFModel) -> list[dict]:
    """max |Δlogit| of sequence 0's first-token logits against the same prompt decoded alone, for prompts
    decoded in one batch (up to 512 rows) or in chunks of 63 rows (under the flash-attention tile)."""
    rng = random.Random(0)
    rows = []
    for unified in (True, False):
        probe = Probe(model, unified=unified)
        for n_prompt in (40, 200):
            prompts = {s: [rng.randrange(100, 40000) for _ in range(n_prompt + 7 * s)] for s in range(4)}
            for chunk in (512, 63):
                probe.clear()
                alone = probe.prefill({0: prompts[0]}, chunk)[0]
                probe.clear()
                cases = {"with 3 other prompts in the batch": probe.prefill(prompts, chunk)[0]}
                probe.clear()
                probe.prefill({1: prompts[0][:30]}, chunk)
                llama_cpp.llama_memory_seq_cp(probe.mem, 1, 0, -1, -1)
                llama_cpp.llama_memory_seq_rm(probe.mem, 0, 30, -1)
                cases["after a 30-token prefix copied from another slot"] = _continue(probe, prompts[0], 30, chunk)
                for name, logits in cases.items():
                    rows.append({"layout": "unified" if unified else "split", "prompt_tokens": n_prompt,
                                 "rows_per_call": chunk, "case": name,
                                 "max_abs_diff": float(np.max(np.abs(logits - alone)))})  # fmt: skip
        probe.close()
    return rows


def _continue(probe: Probe, prompt: list[int], start: int, chunk: int) -> np.ndarray:
    """Sequence 0 computes `prompt` from position `start` on (its cache holds the rest)."""
    out = None
    for at in range(start, len(prompt), chunk):
        piece = prompt[at : at + chunk]
        items = [(0, at + j, t, at + j == len(prompt) - 1) for j, t in enumerate(piece)]
        out = probe.decode(items).get(0, out)
    assert out is not None
    return out


def engine_rounds(spec: LlamaCppSpec, rounds: int) -> dict:
    engine = LlamaCppEngine(spec)
    questions = [f"The secret code word is {w}. What is the secret code word?" for w in WORDS]
    prompts = [engine.tokenize(engine.apply_chat_template([{"role": "user", "content": q}])) for q in questions]

    async def one(tokens: list[int]) -> str:
        params = SamplingParams(max_tokens=24, temperature=0.0)
        return "".join([c.text async for c in await engine.generate(GenerationRequest("b", params, tokens))])

    async def main() -> tuple[int, int]:
        differ = total = 0
        for _ in range(rounds):
            alone = [await one(p) for p in prompts]
            together = await asyncio.gather(*(one(p) for p in prompts))
            differ += sum(a != b for a, b in zip(alone, together, strict=True))
            total += len(prompts)
        return differ, total

    try:
        differ, total = asyncio.run(main())
    finally:
        engine.close()
    return {"differ": differ, "total": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slots", type=int, default=16)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    model = GGUFModel(embedded_model_path())
    kernels = kernel_probe(model)
    model.close()
    modes = {
        "unified KV, prefix sharing (default)": LlamaCppSpec(slots=args.slots, ctx=1024, threads=2),
        "split KV, no sharing": LlamaCppSpec(slots=args.slots, ctx=1024, threads=2, share_prefixes=False),
        "deterministic": LlamaCppSpec(slots=args.slots, ctx=1024, threads=2, deterministic=True),
    }
    engines = {name: engine_rounds(spec, args.rounds) for name, spec in modes.items()}
    lines = ["| KV layout | prompt tokens | rows per call | sequence 0's prompt decoded … | max abs Δ logit vs alone |",
             "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['layout']} | {r['prompt_tokens']} | {r['rows_per_call']} | {r['case']} | {r['max_abs_diff']:.3g} |"
              for r in kernels]  # fmt: skip
    lines += ["", f"| engine mode | greedy answers differing from the same prompt alone ({args.slots} at once, "
              f"{args.rounds} rounds) |", "|---|---|"]  # fmt: skip
    lines += [f"| {name} | {r['differ']} / {r['total']} |" for name, r in engines.items()]
    table = "\n".join(lines) + "\n"
    (RESULTS / "invariance.json").write_text(json.dumps({"kernels": kernels, "engines": engines}, indent=2))
    (RESULTS / "invariance.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
