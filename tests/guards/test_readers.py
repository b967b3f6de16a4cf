"""The readers' child process (guards/readers.py): replaced when it dies, gone when its parent dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from parley.guards.readers import readers

CASES = Path(__file__).parents[1] / "data" / "guard_multilingual_cases.json"
PARENT = """
import os, sys, time
from parley.guards.readers import readers
if __name__ == "__main__":
    print(readers.submit(os.getpid).result(), flush=True)
    time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def test_a_reader_that_dies_is_replaced_and_reads_again():
    first = readers.submit(os.getpid).result()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # readings sent before the pool saw the death fail; the next ones go to a fresh child
        try:
            second = readers.submit(os.getpid).result(timeout=60)
            break
        except BrokenProcessPool:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert second != first and not alive(first)
    attack = json.loads(CASES.read_text())[0]["attack"]  # one the classifier reads as an injection
    assert [f.detail for f in readers.read(attack).result()] == ["classifier"]


def test_the_reader_exits_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)  # not left behind with the model loaded


def test_no_child_is_started_when_the_policy_turns_the_classifier_off(monkeypatch):
    """Found in review: the server's start-up warmed the readers' child (~490 MB) under
    `injection_classifier=off`, which never reads; with the default policy it is started."""
    import asyncio

    from parley.guards import service
    from parley.guards.readers import Readers

    for policy, started in (("input:injection_classifier=off", False), ("", True)):
        fresh = Readers()
        monkeypatch.setattr(service, "readers", fresh)
        holder = service.GuardsHolder(enabled=True, policy=policy)
        asyncio.run(holder.load())
        assert holder.ready and (fresh._pool is not None) is started
        fresh.close()
