"""Turns on the CPU cores, taken by the two kinds of heavy compute one Parley process runs: llama.cpp's decode
steps and the guards' encoder passes.

Both are threads of native code that release the GIL, so without turns they run at once. On a small machine
that costs more than either alone: llama.cpp splits each step over its threads and waits at a barrier for the
slowest, so when the encoder takes one core every stream's step waits for the thread that shares it (measured
on 2 cores, one stream: 14 ms between tokens with the guards off, 49 ms with an input scan running beside it).
Taking turns, the encoder's pass runs alone on a core for its ~30 ms, then decoding goes on at full speed.

Turns are needed only where the two share cores: `mode` "auto" (the default, setting `guard_core_turns`) takes
them when the llama.cpp engines in this process run at least as many threads as there are cores (the
default: one thread per core), "on" always, "off" never (a machine with cores to spare for the encoder).

Turns are first come, first served: a decode loop that asks again right after its step queues behind an
encoder pass that was already waiting, so neither starves. A turn is one decode call or one encoder forward
pass (at most `e5.BATCH_TOKENS` tokens), so a long document being scanned lets decode steps in between.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal

Mode = Literal["auto", "on", "off"]


class CoreTurns:
    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._queue: deque[object] = deque()
        self._busy = False
        self.waited = 0.0  # seconds spent waiting for a turn, all callers (for tests and benchmarks)
        self.turns = 0
        self.mode: Mode = "auto"
        self.engine_threads = 0  # llama.cpp threads of the engines loaded in this process

    def engine_started(self, threads: int) -> None:
        with self._cv:
            self.engine_threads += threads

    def engine_closed(self, threads: int) -> None:
        with self._cv:
            self.engine_threads = max(self.engine_threads - threads, 0)

    @property
    def taken(self) -> bool:
        """Whether turns are taken now."""
        if self.mode == "auto":
            return self.engine_threads >= (os.cpu_count() or 1)
        return self.mode == "on"

    def turn(self) -> AbstractContextManager[None]:
        """Hold the cores for the block (no-op when turns are not taken)."""
        return self._turn() if self.taken else nullcontext()

    @contextmanager
    def _turn(self) -> Iterator[None]:
        ticket = object()
        with self._cv:
            self._queue.append(ticket)
            if self._busy or self._queue[0] is not ticket:
                start = time.perf_counter()
                while self._busy or self._queue[0] is not ticket:
                    self._cv.wait()
                self.waited += time.perf_counter() - start
            self._queue.popleft()
            self._busy = True
            self.turns += 1
        try:
            yield
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()


CORES = CoreTurns()  # one per process: every engine and encoder in it shares the same cores
