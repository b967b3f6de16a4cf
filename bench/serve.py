"""Serving benchmark: Parley vs llama-cpp-python's own server vs the raw batched decode loop.

Method after vLLM's serving benchmark: a fixed set of distinct prompts of varied length (so the prefix
cache does not flatter the figures), streamed with a concurrency limit; per request the time to first
token (TTFT), inter-token latency (ITL, between content chunks) and time per output token (TPOT); per level
the aggregate output throughput, errors and peak RSS of the server. Every request generates exactly
`--tokens` tokens greedily (end-of-generation banned: `ignore_eos` for Parley, a logit bias for the baseline).

    python bench/serve.py [--levels 1,4,16,32] [--tokens 64] [--slots 16] [--ctx 2048]
                          [--against REF] [--deterministic] [--skip-baseline]

`--against REF` also serves Parley as it was at git revision REF (a worktree, same venv), and
`--deterministic` also serves this Parley with `--deterministic`: each is compared with this Parley in the
same run. Writes bench/results/serve.{json,md,png} and prints the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ENV, RESULTS, ROOT, free_port, parley_cmd, pct, peak_rss_mb, rss_mb, start, stop, stream_chat
from decode_loop import raw_decode_loop

WORDS = [
    "network",
    "server",
    "latency",
    "cache",
    "request",
    "token",
    "model",
    "prompt",
    "answer",
    "stream",
    "queue",
    "thread",
    "memory",
    "disk",
    "database",
    "replica",
    "failover",
    "backup",
    "router",
    "switch",
    "firewall",
    "packet",
    "kernel",
    "process",
    "signal",
    "socket",
    "file",
    "buffer",
    "schedule",
    "deploy",
    "release",
    "version",
    "commit",
    "branch",
    "review",
    "test",
    "metric",
    "alert",
    "dashboard",
    "incident",
]


def make_prompts(n: int, seed: int = 0, words: tuple[int, int] = (8, 60)) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    for i in range(n):
        words_ = " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words)))
        prompts.append(f"Ticket {i}: summarise these operator notes in plain English: {words_}")
    return prompts


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak


async def run_level(url: str, models: list[str], prompts: list[str], c: int, tokens: int, extra: dict,
                    keepalive: bool = True, system: str | None = None) -> dict:  # fmt: skip
    """Request i asks model `models[i % len(models)]` (a base and an adapter alternate when there are two).
    `keepalive=False`: a new connection per request (llama-server closes kept-alive ones after a few requests,
    and a request sent on one as it closes fails). `system`: an operator's system prompt before each."""
    sem = asyncio.Semaphore(c)
    limits = httpx.Limits(max_connections=c + 4, max_keepalive_connections=c + 4 if keepalive else 0)

    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def one(i: int, prompt: str):
            messages = [{"role": "user", "content": prompt}]
            if system is not None:
                messages.insert(0, {"role": "system", "content": system})
            body = {"model": models[i % len(models)], "messages": messages,
                    "max_tokens": tokens, "temperature": 0, "stream": True, **extra}  # fmt: skip
            async with sem:
                return await stream_chat(client, url + "/v1/chat/completions", body)

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r.ok]
    out_tokens = sum(r.tokens or (len(r.itl) + 1) for r in ok)
    tpot = [(r.total - r.ttft) / max((r.tokens or len(r.itl) + 1) - 1, 1) for r in ok]
    itl = [x for r in ok for x in r.itl]
    ttft = [r.ttft for r in ok]
    return {
        "concurrency": c,
        "requests": len(prompts),
        "errors": len(results) - len(ok),
        "error_sample": next((r.error for r in results if not r.ok), ""),
        "output_tokens": out_tokens,
        "wall_s": wall,
        "throughput_tps": out_tokens / wall,
        "ttft_p50_s": pct(ttft, 50),
        "ttft_p95_s": pct(ttft, 95),
        "itl_p50_ms": pct(itl, 50) * 1000,
        "itl_p95_ms": pct(itl, 95) * 1000,
        "tpot_p50_ms": pct(tpot, 50) * 1000,
        "decode_tps_per_request": 1000 / (pct(tpot, 50) * 1000) if tpot else 0.0,
    }


def bench_server(name: str, cmd: list[str], url: str, ready: str, levels, prompts_for, tokens, extra,
                 adapter: Path | None = None) -> list:  # fmt: skip
    """`adapter`: register this GGUF LoRA and send every other request to it."""
    proc = start(cmd, url, ready, RESULTS / f"serve.{name}.log", timeout=180)
    rows = []
    try:
        models = [httpx.get(url + "/v1/models").json()["data"][0]["id"]]
        if adapter is not None:
            created = httpx.post(url + "/admin/adapters", timeout=60,
                                 json={"name": "bench-lora", "base_model": models[0], "gguf_path": str(adapter)})
            created.raise_for_status()
            models.append("bench-lora")
        asyncio.run(run_level(url, models, prompts_for(2)[:2], 1, 8, extra))  # warm-up
        for c in levels:
            sampler = RssSampler(proc.pid)
            sampler.start()
            row = asyncio.run(run_level(url, models, prompts_for(c), c, tokens, extra))
            row["rss_peak_mb"] = sampler.stop()
            rows.append(row)
            print(f"  {name:9} c={c:<3} {row['throughput_tps']:7.1f} tok/s  TTFT p50 {row['ttft_p50_s']:.2f}s "
                  f"p95 {row['ttft_p95_s']:.2f}s  ITL p50 {row['itl_p50_ms']:.0f}ms  errors {row['errors']}  "
                  f"RSS {row['rss_peak_mb']:.0f}MB", flush=True)  # fmt: skip
        rows[-1]["vmhwm_mb"] = peak_rss_mb(proc.pid)
    finally:
        stop(proc)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,4,16,32")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--words", default="8,60", help="prompt length range in words (uniform)")
    ap.add_argument("--out", default="serve", help="name of the result files")
    ap.add_argument("--skip-baseline", action="store_true", help="no llama_cpp.server run")
    ap.add_argument("--against", metavar="REF", help="also serve Parley at this git revision, in the same run")
    ap.add_argument("--deterministic", action="store_true", help="also serve this Parley with --deterministic")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="also serve this Parley with these serve flags or PARLEY_ settings, e.g. "
                         "'log off=--no-completion-log' or 'turns off=PARLEY_GUARD_CORE_TURNS=off'")
    ap.add_argument("--guards-off", action="store_true",
                    help="also serve this Parley with the guards off (PARLEY_GUARDS=false), in the same run")
    ap.add_argument("--adapter-mix", action="store_true",
                    help="also serve this Parley with every other request on a LoRA adapter (random weights)")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from parley.engines.llamacpp.engine import embedded_model_path
    from parley.engines.llamacpp.gguf_model import GGUFModel

    model_path = embedded_model_path()
    RESULTS.mkdir(parents=True, exist_ok=True)
    total = sum(max(2 * c, 4) for c in levels)
    lo, hi = (int(x) for x in args.words.split(","))
    pool = make_prompts(total + 8, words=(lo, hi))
    offsets, acc = {}, 0
    for c in levels:
        offsets[c], acc = acc, acc + max(2 * c, 4)

    def prompts_for(c: int) -> list[str]:
        return pool[offsets.get(c, total) : offsets.get(c, total) + max(2 * c, 4)]

    # The ceiling first, in this process, with no server running.
    vocab = GGUFModel(model_path)
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    fmt = Jinja2ChatFormatter(vocab.chat_template, vocab.eos_text, vocab.bos_text)
    eog = {str(t): -100.0 for t in vocab.eog_tokens}

    def chat_tokens(p: str) -> list[int]:
        return vocab.tokenize(fmt(messages=[{"role": "user", "content": p}]).prompt, add_special=False,
                              parse_special=True)  # fmt: skip

    ceiling = {}
    for c in levels:
        r = raw_decode_loop(model_path, [chat_tokens(p) for p in prompts_for(c)[:c]], args.tokens)
        ceiling[c] = r
        print(f"  ceiling   c={c:<3} {r['decode_tps']:7.1f} tok/s decode, prefill {r['prefill_tps']:.0f} tok/s",
              flush=True)  # fmt: skip
    vocab.close()

    extra = {"ignore_eos": True, "stream_options": {"include_usage": True}}
    sizing = ["--slots", str(args.slots), "--ctx", str(args.ctx), "--max-queue", "256"]

    def serve_parley(name: str, flags: list[str], src: Path | None = None, adapter: Path | None = None,
                     env: dict[str, str] | None = None) -> list[dict]:  # fmt: skip
        port = free_port()
        ENV.clear()
        ENV["PARLEY_DATA_DIR"] = tempfile.mkdtemp(prefix="parley-bench-")  # its own store: no keys, no adapters
        ENV.update(env or {})
        if src is not None:
            ENV["PYTHONPATH"] = str(src)  # that revision's package, ahead of this checkout's editable install
        try:
            return bench_server(name, parley_cmd(port, *sizing, *flags), f"http://127.0.0.1:{port}", "/ready",
                                levels, prompts_for, args.tokens, extra, adapter)  # fmt: skip
        finally:
            ENV.clear()

    series = {"parley": serve_parley("parley", [])}
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.against],
                           check=True, capture_output=True)  # fmt: skip
            try:
                series[f"parley@{args.against}"] = serve_parley(f"parley@{args.against}", [], tree / "src")
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    if args.guards_off:
        series["parley, guards off"] = serve_parley("parley-noguards", [], env={"PARLEY_GUARDS": "false"})
    if args.deterministic:
        series["parley --deterministic"] = serve_parley("parley-det", ["--deterministic"])
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        env = dict(f.split("=", 1) for f in flags.split() if f.startswith("PARLEY_"))  # settings by environment
        flags_ = [f for f in flags.split() if not f.startswith("PARLEY_")]
        series[f"parley, {name}"] = serve_parley(name.replace(" ", "-"), flags_, env=env)
    if args.adapter_mix:
        series["parley, half on an adapter"] = serve_parley("parley-lora", [], adapter=random_adapter(model_path))
    baseline = []
    if not args.skip_baseline:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = ("import runpy, sys; from parley.engines.llamacpp.gguf_model import portable_defaults; "
                  "sys.argv[0] = 'llama_cpp.server'\nwith portable_defaults(): "
                  "runpy.run_module('llama_cpp.server', run_name='__main__')")  # fmt: skip
        cmd = [sys.executable, "-c", server, "--model", str(model_path), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(args.ctx), "--n_threads", "2", "--n_threads_batch", "2",
               "--interrupt_requests", "False"]  # fmt: skip
        baseline = bench_server("baseline", cmd, url, "/v1/models", levels, prompts_for, args.tokens,
                                {"logit_bias": eog})  # fmt: skip

    report = {"tokens": args.tokens, "slots": args.slots, "ctx": args.ctx, "levels": levels, "words": [lo, hi],
              "parley": series["parley"], "series": series, "baseline": baseline,
              "ceiling": [ceiling[c] for c in levels]}  # fmt: skip
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (RESULTS / f"{args.out}.md").write_text(table)
    print(table)
    plot(report, RESULTS / f"{args.out}.png")


def random_adapter(model_path: Path) -> Path:
    """A LoRA of rank 8 on q/k/v/o with random weights: serving cost does not depend on the values."""
    from parley.engines.llamacpp.gguf_model import GGUFModel
    from parley.tune.gguf_lora import random_lora_state, write_gguf_lora

    m = GGUFModel(model_path)
    state = random_lora_state(n_layer=m.n_layer, n_embd=m.n_embd, n_head=m.n_head, n_head_kv=m.n_head_kv)
    path = write_gguf_lora(Path(tempfile.mkdtemp()) / "bench-lora.gguf", state, alpha=16, n_head=m.n_head,
                           n_head_kv=m.n_head_kv)  # fmt: skip
    m.close()
    return path


def markdown(report: dict) -> str:
    lines = [
        f"Each request: {report['tokens']} output tokens, greedy; Parley {report['slots']} slots x "
        f"{report['ctx']} context; requests per level = 2 x concurrency; prompts of {report['words'][0]}-"
        f"{report['words'][1]} words after a fixed preamble.",
        "",
        "| c | engine | tok/s | TTFT p50 s | TTFT p95 s | ITL p50 ms | ITL p95 ms | TPOT p50 ms | errors "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["concurrency"]: r for r in report["baseline"]}
    series = report.get("series") or {"parley": report["parley"]}
    for i, row in enumerate(report["parley"]):
        c = row["concurrency"]
        for name, r in [*((n, rows[i]) for n, rows in series.items()), ("baseline", base.get(c))]:
            if r:
                lines.append(
                    f"| {c} | {name} | {r['throughput_tps']:.1f} | {r['ttft_p50_s']:.2f} | {r['ttft_p95_s']:.2f} | "
                    f"{r['itl_p50_ms']:.0f} | {r['itl_p95_ms']:.0f} | {r['tpot_p50_ms']:.1f} | {r['errors']} | "
                    f"{r['rss_peak_mb']:.0f} |"
                )
        ceil = report["ceiling"][i]
        lines.append(f"| {c} | raw decode loop (ceiling) | {ceil['decode_tps']:.1f} (decode only) | | | | | | | |")
    lines += ["", "| c | Parley / baseline (tok/s) | Parley / ceiling (tok/s) | Parley per-request decode / ceiling |",
              "|---|---|---|---|"]  # fmt: skip
    for i, row in enumerate(report["parley"]):
        c = row["concurrency"]
        b = base.get(c)
        ratio_b = f"{row['throughput_tps'] / b['throughput_tps']:.2f}" if b else "n/a"
        ceil = report["ceiling"][i]["decode_tps"]
        per_req = row["decode_tps_per_request"] * min(c, report["slots"]) / ceil
        lines.append(f"| {c} | {ratio_b} | {row['throughput_tps'] / ceil:.2f} | {per_req:.2f} |")
    others = [n for n in series if n != "parley"]
    if others:
        lines += ["", "| c | " + " | ".join(f"{n} / parley (tok/s, TTFT p95)" for n in others) + " |",
                  "|---|" + "---|" * len(others)]  # fmt: skip
        for i, row in enumerate(report["parley"]):
            cells = [f"{series[n][i]['throughput_tps'] / row['throughput_tps']:.2f}, "
                     f"{series[n][i]['ttft_p95_s'] / row['ttft_p95_s']:.2f}" for n in others]  # fmt: skip
            lines.append(f"| {row['concurrency']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    levels = report["levels"]
    for name, rows in (report.get("series") or {"Parley": report["parley"]}).items():
        a.plot(levels, [r["throughput_tps"] for r in rows], "o-", label=name)
    if report["baseline"]:
        a.plot(levels, [r["throughput_tps"] for r in report["baseline"]], "s-", label="llama_cpp.server")
    a.plot(levels, [r["decode_tps"] for r in report["ceiling"]], "^--", label="raw decode loop (decode only)")
    a.set(
        xlabel="concurrent streams", ylabel="output tokens/s", title="Aggregate throughput", xscale="log", xticks=levels
    )
    a.set_xticklabels(levels)
    a.legend()
    for name, rows in (report.get("series") or {"Parley": report["parley"]}).items():
        b.plot(levels, [r["ttft_p95_s"] for r in rows], "o-", label=name)
    if report["baseline"]:
        b.plot(levels, [r["ttft_p95_s"] for r in report["baseline"]], "s-", label="llama_cpp.server")
    b.set(xlabel="concurrent streams", ylabel="seconds", title="Time to first token, p95", xscale="log", xticks=levels)
    b.set_xticklabels(levels)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
