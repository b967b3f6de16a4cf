"""CPU time of post-processing per streamed token, guards on against off, with no model: a scripted engine
streams the same answers (one chunk a word) through the whole pipeline, and the process's CPU time is read
around the streams. On two cores every millisecond of Python per token is taken from decoding.

    python bench/postprocess_cost.py [--answers 40] [--system bench/data/helpdesk_system.txt]

Prints the CPU time per token for each configuration and the ratio to guards off. It counts the server process's
threads (the paraphrase judge's among them), not the readers' child process that reads prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parley.engines.scripted import ScriptedEngine, chunks_of  # noqa: E402
from tests.pipeline.conftest import chat, make_pipeline  # noqa: E402

ANSWER = ("The original notes describe a network outage that affected the billing system for two hours on Monday. "
          "The team restarted the core router and checked the firewall rules, then restored the database from "
          "the last backup. Customers who were charged twice will get a refund within five business days. "
          "Please contact the support desk if the problem comes back, and include your ticket number.")  # fmt: skip


NATO = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "kilo", "lima",
        "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
        "xray", "yankee", "zulu"]


def answer(i: int) -> str:
    """The answer with words of its own in every sentence: the guards cache what they read, and a real server
    seldom streams the same sentence twice."""
    sentences = ANSWER.removesuffix(".").split(". ")
    return ". ".join(f"{s} for {NATO[i % 26]} {NATO[(i // 26 + k) % 26]}" for k, s in enumerate(sentences)) + "."


def run(guards, answers: int, system: str | None, first: int = 0) -> tuple[float, int]:
    engine = ScriptedEngine([chunks_of(answer(first + i)) for i in range(answers)])
    pipeline = make_pipeline(engine, guards)

    async def main() -> int:
        tokens = 0
        for i in range(answers):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": f"Ticket {NATO[i % 26]}: summarise the outage notes."}]
            turn = chat(*messages, trace=False, stream=True)
            run = await pipeline.start(turn)
            async for _ in run.chunks():
                pass
            tokens += turn.usage.completion_tokens
        return tokens

    start = time.process_time()
    tokens = asyncio.run(main())
    return time.process_time() - start, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answers", type=int, default=40)
    ap.add_argument("--system", type=Path, default=None)
    args = ap.parse_args()
    from parley.guards.service import Guards

    system = args.system.read_text(encoding="utf-8") if args.system else None
    configs = {"guards off": None, "guards on": Guards()}
    run(configs["guards on"], 3, system, first=500)  # warm: models loaded (its answers are not measured again)
    rows = {}
    for name, guards in configs.items():
        cpu, tokens = run(guards, args.answers, system)
        rows[name] = cpu / tokens
    for name, per_token in rows.items():
        print(f"{name}: {per_token * 1e6:.0f} us of CPU a token ({per_token / rows['guards off']:.2f}x off)")


if __name__ == "__main__":
    main()
