"""Shared pieces of the benchmarks: starting servers, streaming one request, percentiles."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ENV: dict[str, str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], url: str, ready_path: str, log: Path, timeout: float = 120,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start a server (`env`: settings of its own, over the bench's) and wait until `ready_path` answers 200."""
    env = {**os.environ, **ENV, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:4]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{cmd[:4]} not ready: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def parley_cmd(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "parley", "serve", "--host", "127.0.0.1", "--port", str(port), *args]


@dataclass
class StreamResult:
    ok: bool
    ttft: float = 0.0
    total: float = 0.0
    tokens: int = 0
    itl: list[float] = field(default_factory=list)  # seconds between content chunks
    error: str = ""


async def stream_chat(client: httpx.AsyncClient, url: str, body: dict) -> StreamResult:
    """One streamed chat completion, timed the way vLLM's serving benchmark times it."""
    start = time.perf_counter()
    last = None
    res = StreamResult(ok=False)
    try:
        async with client.stream("POST", url, json=body) as resp:
            if resp.status_code != 200:
                res.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
                return res
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if "error" in data:
                    res.error = str(data["error"])[:200]
                    return res
                if data.get("usage"):
                    res.tokens = data["usage"]["completion_tokens"]
                for choice in data.get("choices", []):
                    if (choice.get("delta") or {}).get("content"):
                        now = time.perf_counter()
                        if last is None:
                            res.ttft = now - start
                        else:
                            res.itl.append(now - last)
                        last = now
    except httpx.HTTPError as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        return res
    res.total = time.perf_counter() - start
    res.ok = last is not None
    return res


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MB (from /proc)."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):  # a child is listed under the thread that started it
        with contextlib.suppress(OSError):
            pids += [int(c) for c in (task / "children").read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
