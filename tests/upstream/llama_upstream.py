"""A real OpenAI-compatible upstream for the tests: llama-cpp-python's own server (`llama_cpp.server`) on the
embedded GGUF, on a free loopback port, loading weights as Parley does (no AMX repacking)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from parley.engines.llamacpp.engine import embedded_model_path
from tests.conftest import free_port, wait_ready

LAUNCH = ("import runpy, sys; from parley.engines.llamacpp.gguf_model import portable_defaults; "
          "sys.argv[0] = 'llama_cpp.server'\nwith portable_defaults(): "
          "runpy.run_module('llama_cpp.server', run_name='__main__')")  # fmt: skip


@dataclass
class Upstream:
    url: str  # the base URL, ending in /v1
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_upstream(tmp: Path, *, port: int | None = None, ctx: int = 2048, timeout: float = 60) -> Upstream:
    port = port or free_port()
    log = tmp / f"upstream-{port}.log"
    cmd = [sys.executable, "-c", LAUNCH, "--model", str(embedded_model_path()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(ctx), "--n_threads", "1", "--n_threads_batch", "1",
           "--interrupt_requests", "False"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    upstream = Upstream(f"http://127.0.0.1:{port}/v1", proc, log, port)
    wait_ready(proc, upstream.url + "/models", timeout, upstream.logs, upstream.kill)
    return upstream
