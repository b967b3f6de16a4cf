"""Fixtures that start real things: the embedded model behind `parley serve` on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy
from sqlalchemy import create_engine, text

MODEL = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def launch_server(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """Start `parley serve` on a free port without waiting for it."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    cmd = [sys.executable, "-m", "parley", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    # Each server gets its own data directory (its own SQLite database) unless the test says otherwise.
    base = {**os.environ, "PARLEY_DATA_DIR": str(tmp / f"data-{port}")}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**base, **(env or {})})
    return Server(f"http://127.0.0.1:{port}", proc, log)


def start_server(tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Server:
    """Start `parley serve` and wait until /ready answers 200."""
    server = launch_server(tmp, *args, env=env)
    wait_ready(server.proc, server.url + "/ready", timeout, server.logs, lambda: stop_server(server))
    return server


def child_pids(pid: int) -> set[int]:
    """A process's children (the server's: the guards' readers), wherever listed: under the thread that started
    each."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that has just ended
            children.update(map(int, (task / "children").read_text().split()))
    return children


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float, logs: Callable[[], str],
               give_up: Callable[[], None]) -> None:  # fmt: skip
    """Wait until `url` answers 200; a process that exits, or is not ready in time, fails with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{logs()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    give_up()
    raise RuntimeError(f"not ready after {timeout}s:\n{logs()}")


def admin_and_chat_keys(server: Server) -> tuple[str, str]:
    """On a server with no keys yet: the first key (admin, made from loopback), then a chat key it makes."""
    admin = httpx.post(server.url + "/admin/keys", json={"name": "ops", "scopes": ["admin"]}).json()["key"]
    chat = httpx.post(server.url + "/admin/keys", json={"name": "app", "scopes": ["chat"]},
                      headers={"Authorization": f"Bearer {admin}"}).json()["key"]  # fmt: skip
    return admin, chat


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def step_detail(trace: list[dict], name: str) -> dict:
    """The detail one pipeline step wrote in a `parley_trace`."""
    for stage in trace:
        for step in stage.get("steps", []):
            if step["step"] == name:
                return step["detail"]
    raise KeyError(f"no step {name!r} in the trace")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    # Deterministic: a request's greedy answer does not depend on the prefix cache or on other requests, so tests
    # may compare two answers of this server (never an answer with text one CPU happens to produce).
    srv = start_server(tmp_path_factory.mktemp("server"), "--slots", "4", "--ctx", "2048", "--max-queue", "32",
                       "--deterministic")  # fmt: skip
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(server: Server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def reference_llama():
    """llama-cpp-python's own high-level API on the same GGUF: an independent tokenizer and template."""
    from llama_cpp import Llama

    from parley.engines.llamacpp.engine import embedded_model_path
    from parley.engines.llamacpp.gguf_model import portable_defaults

    with portable_defaults():
        llm = Llama(str(embedded_model_path()), n_ctx=2048, n_threads=2, verbose=False, seed=0)
    yield llm
    llm.close()


# ---- databases: a fresh SQLite file and a fresh PostgreSQL database on the local server ------------------

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_postgres():
    """A new, empty PostgreSQL database on the local server, dropped afterwards."""
    name = f"parley_t_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except sqlalchemy.exc.OperationalError:
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (see .ci/run)")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """The URL of a database that does not hold Parley's tables yet, on each of the two databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def pg_url():
    """An empty PostgreSQL database (for what only PostgreSQL can stage, such as an outage)."""
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def db(empty_url):
    from parley.store.db import Database

    database = Database(empty_url)
    yield database
    database.close()
