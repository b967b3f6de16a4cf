"""The ceiling: a raw batched decode loop on llama.cpp's low-level API, with no server and no Python
pipeline around it. All prompts are prefilled, then every step decodes one new token for every sequence
in one `llama_decode`, sampled greedily. Reports decode tokens/s (prefill excluded)."""

from __future__ import annotations

import time
from pathlib import Path

import llama_cpp

from parley.engines.llamacpp.gguf_model import GGUFModel


def raw_decode_loop(model_path: Path, prompts: list[list[int]], n_gen: int, threads: int = 2) -> dict[str, float]:
    model = GGUFModel(model_path)
    n = len(prompts)
    per_seq = max(len(p) for p in prompts) + n_gen + 8
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = per_seq * n
    cparams.n_batch = cparams.n_ubatch = max(512, n)
    cparams.n_seq_max = n
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.kv_unified = False
    ctx = llama_cpp.llama_init_from_model(model.ptr, cparams)
    batch = llama_cpp.llama_batch_init(cparams.n_batch, 0, 1)
    samplers = []
    for _ in range(n):
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        samplers.append(chain)

    def put(i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits

    try:
        t0 = time.perf_counter()
        last_idx: dict[int, int] = {}
        tokens: dict[int, int] = {}
        work = [(s, i, t) for s, p in enumerate(prompts) for i, t in enumerate(p)]
        for start in range(0, len(work), cparams.n_batch):
            part = work[start : start + cparams.n_batch]
            for k, (s, i, t) in enumerate(part):
                is_last = i == len(prompts[s]) - 1
                put(k, t, i, s, is_last)
                if is_last:
                    last_idx[s] = k
            batch.n_tokens = len(part)
            assert llama_cpp.llama_decode(ctx, batch) == 0
            tokens.update({s: llama_cpp.llama_sampler_sample(samplers[s], ctx, k) for s, k in last_idx.items()})
            last_idx.clear()
        prefill = time.perf_counter() - t0
        pos = [len(p) for p in prompts]
        t1 = time.perf_counter()
        for _ in range(n_gen - 1):
            for s in range(n):
                put(s, tokens[s], pos[s], s, True)
                pos[s] += 1
            batch.n_tokens = n
            assert llama_cpp.llama_decode(ctx, batch) == 0
            for s in range(n):
                tokens[s] = llama_cpp.llama_sampler_sample(samplers[s], ctx, s)
        decode = time.perf_counter() - t1
    finally:
        for chain in samplers:
            llama_cpp.llama_sampler_free(chain)
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        model.close()
    prompt_tokens = sum(map(len, prompts))
    return {
        "sequences": n,
        "decode_tps": n * (n_gen - 1) / decode,
        "prefill_tps": prompt_tokens / prefill,
        "prompt_tokens": prompt_tokens,
    }
