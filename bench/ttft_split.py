"""Where a streamed answer's first token waits: the server's first token (the completion log's `ttft_ms`, taken
where the model's output enters post-processing) against the client's first content chunk, per request, for a
burst of streams at once.

    python bench/ttft_split.py [--streams 16] [--bursts 2] [--setting PARLEY_GUARDS=false ...]

The gap between the two is post-processing holding text back (the output guard releases whole words) plus the
trip to the client and the request's way in before its turn is created. Prints one line per request, sorted by
the client's time, and the median gap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, parley_cmd, start, stop
from serve import make_prompts

MODEL = "smollm2-135m-instruct"


async def one(client: httpx.AsyncClient, url: str, prompt: str, tokens: int) -> tuple[str, float, str]:
    """(completion id, seconds to the first content chunk, its text)."""
    t0 = time.perf_counter()
    rid, first, text = "", -1.0, ""
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
            "temperature": 0, "stream": True}  # fmt: skip
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            rid = chunk["id"]
            content = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
            if content and first < 0:
                first, text = time.perf_counter() - t0, content
    return rid, first, text


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="parley-ttft-"))
    env = {"PARLEY_DATA_DIR": str(data), **dict(s.split("=", 1) for s in args.setting)}
    proc = start(parley_cmd(port, "--slots", str(args.slots), "--ctx", "1024"), url, "/ready", data / "server.log",
                 timeout=240, env=env)  # fmt: skip
    gaps: list[float] = []
    try:
        async with httpx.AsyncClient(timeout=300) as client:
            await one(client, url, "Warm up, please.", 8)
            for burst in range(args.bursts):
                prompts = make_prompts(args.streams, seed=burst)
                results = await asyncio.gather(*[one(client, url, p, args.tokens) for p in prompts])
                await asyncio.sleep(1)  # the completion log is written as each turn ends
                db = sqlite3.connect(data / "parley.db")
                print(f"burst {burst + 1}: client first content / server first token / first content")
                for rid, first, text in sorted(results, key=lambda r: r[1]):
                    row = db.execute("SELECT ttft_ms FROM completions WHERE id = ?", (rid,)).fetchone()
                    server = row[0] / 1000 if row and row[0] is not None else float("nan")
                    if first >= 0 and server == server:  # a stream with content and its log row
                        gaps.append(first - server)
                    print(f"  {first:6.2f} s  {server:6.2f} s  {text!r}")
                db.close()
    finally:
        stop(proc)
    print(f"median gap, client first content - server first token: {statistics.median(gaps):.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--bursts", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--setting", action="append", default=[], metavar="PARLEY_X=VALUE")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
