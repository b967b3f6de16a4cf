"""What tool calling costs in serving: the same 16 concurrent streamed chats without tools (`plain`), with tools
under `tool_choice: auto` (five tools described in the system prompt; the grammar waits for the opening tag) and
under `required` (the calls' grammar from the first token), and `tools_text`: plain chats that carry the very
system prompt `auto` adds, without tools (what the longer prompt costs by itself). One Parley server with 16
slots, in one run; rounds alternate the order of the modes; medians over rounds.

Throughput is generated tokens per second of wall time for the whole burst (the answers differ in length
between modes, so tokens/s and not requests/s); TTFT is to the first delta of any kind (content or call).

    python bench/tools_load.py [--rounds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time

import httpx
from common import ENV, RESULTS, free_port, parley_cmd, pct, start, stop
from tools import ALL, CITIES, FREE, PAIRS

from parley.tools.formats import HERMES
from parley.tools.spec import parse_tools

MODES = ("plain", "tools_text", "auto", "required")


TOOLS_TEXT = HERMES.system_prompt(parse_tools(ALL, "auto", None).tools, required=False)


def questions(n: int) -> list[str]:
    pool = [f"What is the weather in {c}?" for c in CITIES] + [f"What is {a} plus {b}?" for a, b in PAIRS] + FREE
    return [pool[i % len(pool)] + ("" if i < len(pool) else f" ({i})") for i in range(n)]


async def one(client: httpx.AsyncClient, url: str, body: dict) -> tuple[float, int]:
    start = time.perf_counter()
    ttft, tokens = float("nan"), 0
    async with client.stream("POST", url, json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            assert "error" not in data, data
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
            for choice in data.get("choices", []):
                delta = choice.get("delta") or {}
                if (delta.get("content") or delta.get("tool_calls")) and ttft != ttft:
                    ttft = time.perf_counter() - start
    return ttft, tokens


async def burst(url: str, mode: str, prompts: list[str], max_tokens: int, ignore_eos: bool = True) -> dict:
    def body(q: str) -> dict:
        b = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": q}], "stream": True,
             "max_tokens": max_tokens, "temperature": 0, "stream_options": {"include_usage": True},
             "ignore_eos": ignore_eos}  # fmt: skip
        if mode == "tools_text":
            b["messages"] = [{"role": "system", "content": TOOLS_TEXT}, *b["messages"]]
        elif mode != "plain":
            b |= {"tools": ALL, "tool_choice": mode}
        return b

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=256)) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one(client, url + "/v1/chat/completions", body(q)) for q in prompts))
        wall = time.perf_counter() - start
    tokens = sum(t for _, t in results)
    return {"tok_s": tokens / wall, "tokens": tokens, "wall_s": wall, "ttft_p50": pct([t for t, _ in results], 50),
            "ttft_p95": pct([t for t, _ in results], 95)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="parley-bench-")
    ENV["PARLEY_DATA_DIR"] = data
    proc = start(parley_cmd(port, "--slots", str(args.concurrency), "--ctx", "1024", "--max-queue", "64"), url,
                 "/ready", RESULTS / "tools_load.server.log")  # fmt: skip
    prompts = questions(args.concurrency)
    rounds: dict[str, list[dict]] = {m: [] for m in MODES}
    try:
        for mode in MODES:  # warm-up: each mode's prompts once
            asyncio.run(burst(url, mode, prompts, 8))
        for r in range(args.rounds):
            order = MODES if r % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                rounds[mode].append(asyncio.run(burst(url, mode, prompts, args.max_tokens)))
    finally:
        stop(proc)
    summary = {}
    for mode in MODES:
        summary[mode] = {k: statistics.median(r[k] for r in rounds[mode]) for k in rounds[mode][0]}
        summary[mode]["vs_plain"] = summary[mode]["tok_s"] / summary["plain"]["tok_s"]
    report = {"concurrency": args.concurrency, "rounds": args.rounds, "max_tokens": args.max_tokens,
              "summary": summary, "rounds_raw": rounds}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tools_load.json").write_text(json.dumps(report, indent=1))
    print(f"c={args.concurrency}, {args.rounds} rounds, medians")
    print("| mode | tok/s | vs plain | TTFT p50 | TTFT p95 | tokens |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        s = summary[mode]
        print(f"| {mode} | {s['tok_s']:.1f} | {s['vs_plain']:.3f} | {s['ttft_p50'] * 1000:.0f} ms | "
              f"{s['ttft_p95'] * 1000:.0f} ms | {s['tokens']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
