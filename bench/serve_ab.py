"""Interleaved A/B of serving configurations: every server is up at once, and each level is run on each server in
turn, for several rounds, so the machine's drift (it ran 1.5-2x slower from one hour to the next) falls on all
alike. Steadier than `serve.py`, which serves one configuration after another.

    python bench/serve_ab.py --levels 1,16 --rounds 2 \
        --config "guards off=PARLEY_GUARDS=false" --config "guards on="

Each `--config` is NAME=SETTINGS, settings as space-separated PARLEY_ environment assignments. Per level and
configuration: mean throughput, TTFT p50/p95 and ITL p95 over the rounds, and the errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, free_port, parley_cmd, start, stop
from serve import make_prompts, run_level


def serve(settings: dict[str, str], slots: int, ctx: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="parley-ab-")
    cmd = parley_cmd(port, "--slots", str(slots), "--ctx", str(ctx), "--max-queue", "256")
    return start(cmd, url, "/ready", Path(data) / "server.log", timeout=240,
                 env={"PARLEY_DATA_DIR": data, **settings}), url  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,16")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--config", action="append", default=[], metavar="NAME=SETTINGS")
    ap.add_argument("--system", default=None, help="an operator's system prompt before every request (the guards "
                    "then also watch for leaks and hijacking)")
    ap.add_argument("--out", default="serve_ab")
    args = ap.parse_args()
    configs = {}
    for item in args.config or ["guards off=PARLEY_GUARDS=false", "guards on="]:
        name, _, settings = item.partition("=")
        configs[name] = dict(s.split("=", 1) for s in settings.split())
    levels = [int(x) for x in args.levels.split(",")]
    extra = {"ignore_eos": True, "stream_options": {"include_usage": True}}
    servers = {name: serve(settings, args.slots, args.ctx) for name, settings in configs.items()}
    rows: dict[str, dict[int, list[dict]]] = {name: {c: [] for c in levels} for name in configs}
    try:
        models = {name: httpx.get(url + "/v1/models").json()["data"][0]["id"] for name, (_, url) in servers.items()}
        for name, (_, url) in servers.items():  # warm up
            asyncio.run(run_level(url, [models[name]], make_prompts(4, seed=9), 2, 8, extra))
        for r in range(args.rounds):
            for c in levels:
                prompts = make_prompts(max(2 * c, 6), seed=100 * r + c)
                for name, (_, url) in servers.items():
                    rows[name][c].append(asyncio.run(run_level(url, [models[name]], prompts, c, args.tokens, extra,
                                                               system=args.system)))
    finally:
        for proc, _ in servers.values():
            stop(proc)
    lines = ["| c | configuration | tok/s | TTFT p50 s | TTFT p95 s | ITL p95 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    for c in levels:
        for name in configs:
            runs = rows[name][c]

            def mean(key: str, runs: list[dict] = runs) -> float:
                return sum(run[key] for run in runs) / len(runs)

            lines.append(f"| {c} | {name} | {mean('throughput_tps'):.1f} | {mean('ttft_p50_s'):.2f} | "
                         f"{mean('ttft_p95_s'):.2f} | {mean('itl_p95_ms'):.0f} | {sum(r['errors'] for r in runs)} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"configs": configs, "rounds": rows}, indent=2, default=str))
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
