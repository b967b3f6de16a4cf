"""Turns on the cores (parley/cores.py): llama.cpp's decode steps and the guards' encoder passes never run at
once, and neither starves the other."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from parley.config import LlamaCppSpec
from parley.cores import CORES, CoreTurns
from parley.engines.base import GenerationRequest, SamplingParams
from parley.engines.llamacpp.engine import LlamaCppEngine


def test_turns_are_exclusive_and_first_come_first_served():
    turns, order, inside = CoreTurns(), [], []
    turns.mode = "on"
    first = threading.Event()

    def worker(name: str, hold: float) -> None:
        with turns.turn():
            inside.append(name)
            assert len(inside) == 1, "two holders at once"
            order.append(name)
            if name == "a":
                first.set()
            time.sleep(hold)
            inside.remove(name)

    a = threading.Thread(target=worker, args=("a", 0.2))
    a.start()
    first.wait(5)
    queued = []
    for name in ("b", "c", "d"):  # they queue in this order while `a` holds the cores
        t = threading.Thread(target=worker, args=(name, 0.01))
        t.start()
        queued.append(t)
        deadline = time.monotonic() + 5
        while len(turns._queue) < len(queued) and time.monotonic() < deadline:
            time.sleep(0.001)
    for t in [a, *queued]:
        t.join(5)
    assert order == ["a", "b", "c", "d"]
    assert turns.turns == 4 and turns.waited > 0


@pytest.fixture(scope="module", autouse=True)
def turns_on():
    """On any machine: "auto" takes turns only when llama.cpp's threads use every core."""
    mode, CORES.mode = CORES.mode, "on"
    yield
    CORES.mode = mode


@pytest.fixture(scope="module")
def engine():
    eng = LlamaCppEngine(LlamaCppSpec(slots=2, ctx=512, max_queue=1, threads=2))
    yield eng
    eng.close()


def test_auto_takes_turns_only_when_the_engines_threads_use_every_core(monkeypatch):
    turns = CoreTurns()
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert not turns.taken  # no engine: nothing to take turns with
    turns.engine_started(2)
    assert not turns.taken  # two cores to spare for the encoder
    turns.engine_started(2)
    assert turns.taken
    turns.engine_closed(2)
    assert not turns.taken
    turns.mode = "on"
    assert turns.taken
    turns.mode, _ = "off", turns.engine_started(8)
    assert not turns.taken


def test_decoding_waits_while_the_encoder_holds_the_cores_and_goes_on_after(engine):
    """A stream is decoding; an encoder pass (here: a turn held for 0.5 s) takes the cores between two of its
    steps, no step runs while it holds them, and the stream then finishes."""
    tokens = engine.tokenize(engine.apply_chat_template([{"role": "user", "content": "Count from one to fifty."}]))
    counters = engine.batcher.counters
    seen: dict[str, int] = {}

    def hold_turn() -> None:
        while counters.steps < 5:  # the stream is decoding
            time.sleep(0.001)
        with CORES.turn():
            seen["start"] = counters.steps
            time.sleep(0.5)
            seen["end"] = counters.steps

    async def main() -> None:
        holder = threading.Thread(target=hold_turn)
        holder.start()
        params = SamplingParams(max_tokens=64, temperature=0.0, ignore_eos=True)
        async for _ in await engine.generate(GenerationRequest("t", params, tokens)):
            pass
        holder.join(5)

    steps_before = counters.steps
    asyncio.run(main())
    assert seen["start"] == seen["end"], "a decode step ran while the encoder held the cores"
    assert counters.steps - steps_before >= 60  # and decoding went on afterwards, to the end


def test_an_encoder_pass_waits_for_its_turn():
    from parley.guards.embeddings import guard_embedder

    encoder = guard_embedder()
    encoder.encode(["warm up"])
    done = threading.Event()
    with CORES.turn():  # a decode step, say, holds the cores
        t = threading.Thread(target=lambda: (encoder.encode(["Is this the way to the station?"]), done.set()))
        t.start()
        assert not done.wait(0.5)
    assert done.wait(10)
    t.join()
