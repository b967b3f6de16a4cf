"""Single-request speed: streamed through Parley's API vs llama-cpp-python called directly, one script.

Both generate exactly N tokens greedily (end-of-generation tokens banned) from the same chat prompt, one
after the other so they never share the two cores. Reports decode tokens/s, time to first token and the
ratio Parley / direct.

    python bench/direct_vs_api.py [--tokens 128] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, free_port, parley_cmd, start, stop, stream_chat

MESSAGES = [{"role": "user", "content": "Write a detailed essay about the history of the printing press."}]


def direct(model_path: str, tokens: int, runs: int) -> list[dict[str, float]]:
    from llama_cpp import Llama

    from parley.engines.llamacpp.gguf_model import portable_defaults

    with portable_defaults():  # the same weights layout Parley uses (no AMX repacking, which crashes here)
        llm = Llama(model_path, n_ctx=2048, n_threads=2, n_threads_batch=2, verbose=False)
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    eog = {i: -100.0 for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)}
    out = []
    try:
        for _ in range(runs + 1):  # the first run warms up
            start_t = time.perf_counter()
            first = last = None
            n = 0
            for chunk in llm.create_chat_completion(
                MESSAGES, max_tokens=tokens, temperature=0.0, logit_bias=eog, stream=True
            ):
                if chunk["choices"][0]["delta"].get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    n += 1
            out.append({"ttft": first - start_t, "decode_tps": (n - 1) / (last - first), "chunks": n,
                        "total_tps": tokens / (last - start_t)})  # fmt: skip
    finally:
        llm.close()
    out[0]["cold"] = 1.0
    return out


async def through_api(url: str, tokens: int, runs: int) -> list[dict[str, float]]:
    body = {"model": "smollm2-135m-instruct", "messages": MESSAGES, "max_tokens": tokens, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    out = []
    async with httpx.AsyncClient(timeout=300) as client:
        for _ in range(runs + 1):
            r = await stream_chat(client, url + "/v1/chat/completions", body)
            assert r.ok and r.tokens == tokens, r
            decode = r.total - r.ttft
            out.append({"ttft": r.ttft, "decode_tps": (r.tokens - 1) / decode, "chunks": len(r.itl) + 1,
                        "total_tps": r.tokens / r.total})  # fmt: skip
    out[0]["cold"] = 1.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from parley.engines.llamacpp.engine import embedded_model_path

    model = str(embedded_model_path())
    RESULTS.mkdir(parents=True, exist_ok=True)
    direct_runs = direct(model, args.tokens, args.runs)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(parley_cmd(port, "--slots", "4"), url, "/ready", RESULTS / "direct_vs_api.parley.log")
    try:
        api_runs = asyncio.run(through_api(url, args.tokens, args.runs))
    finally:
        stop(proc)

    def med(runs: list[dict[str, float]], key: str) -> float:
        if key == "ttft_cold":
            return runs[0]["ttft"]  # the first run: nothing cached yet
        return statistics.median(r[key] for r in runs[1:])  # the rest: the chat prefix is cached

    report = {
        "tokens": args.tokens,
        "runs": args.runs,
        "direct": {k: med(direct_runs, k) for k in ("ttft_cold", "ttft", "decode_tps", "total_tps")},
        "parley": {k: med(api_runs, k) for k in ("ttft_cold", "ttft", "decode_tps", "total_tps")},
    }
    report["ratio_decode_tps"] = report["parley"]["decode_tps"] / report["direct"]["decode_tps"]
    report["ratio_total_tps"] = report["parley"]["total_tps"] / report["direct"]["total_tps"]
    (RESULTS / "direct_vs_api.json").write_text(json.dumps(report, indent=2))
    d, p = report["direct"], report["parley"]
    print("| path | TTFT cold ms | TTFT warm ms | decode tok/s | end-to-end tok/s |\n|---|---|---|---|---|")
    for name, r in (("llama-cpp-python direct", d), ("Parley API (SSE)", p)):
        print(
            f"| {name} | {r['ttft_cold'] * 1000:.0f} | {r['ttft'] * 1000:.0f} | {r['decode_tps']:.1f} "
            f"| {r['total_tps']:.1f} |"
        )
    print(f"ratio Parley/direct: decode {report['ratio_decode_tps']:.2f}, end-to-end {report['ratio_total_tps']:.2f}")


if __name__ == "__main__":
    main()
