"""The injection classifier's readings left to finish while the model answers (see guard_input.py), in a child
process at a lower CPU priority.

Why a process and not a thread: a reader thread's Python (the tokenizer's Viterbi search, ~4 ms a prompt, and
the glue between torch calls) takes the GIL from the event loop and the engine's batcher, and at a low priority
it can hold it while it waits for a core: a priority inversion the kernel cannot see. In a process of its own
the reading shares no lock with the server, and its niceness alone decides who gets the cores. (py-spy's GIL
samples at 16 streams put the reader threads at 73% of the samples in which a thread held the GIL, but py-spy
reads the GIL's last holder; a direct test showed torch's int8 matrix product itself releases the GIL, so the
share that was really the readers' Python is nearer a third. The process's gain over threads at the same
priority was not measured apart from the other changes made with it.)

Why nice 10 (`Settings.guard_reader_nice`) and not 19: llama.cpp's threads spin between steps, so at nice 19 the
child got almost no CPU under load. In one interleaved run at 16 streams every answer's end waited for its
reading, 5.1 s on average and up to the 10 s limit. At nice 0, 5 and 10 the wait was ~30 ms, and nice 10 left
decoding the most (62.1 tok/s against 58.2 at nice 0 and 64.4 with the guards off).

The child loads the same classifier from the same package files (a few seconds, once); a child that dies is
replaced at the next reading, and the readings it held fail (the trace notes them as unfinished). It exits when
the server's process does, however that ends. Being spawned, it imports the parent's `__main__` module again:
a script that uses the guards must keep its top-level work under `if __name__ == "__main__":`, as the `parley`
command does."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from parley.guards.base import Finding

READER_NICE = 10  # the default; Settings.guard_reader_nice
_guard = None  # in the child: the default input guard, with the classifier


def _start_reader(nice: int) -> None:
    """In the child, before torch starts any thread (they inherit it): its priority, then the model."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):  # not allowed here: normal priority
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a server killed outright (SIGKILL, out of memory) must not leave its reader behind
        threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()
    from parley.guards.input_guard import InputGuard

    global _guard
    _guard = InputGuard.default()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns when the parent has exited, however it ended
    os._exit(0)


def _read(masked: str) -> list[Finding]:
    assert _guard is not None
    return _guard.read_later(masked)


class Readers:
    """One child process, started at the first reading (or `warm`), shared by every `Guards` of this process."""

    def __init__(self, nice: int = READER_NICE) -> None:
        self.nice = nice  # taken by the next child started
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def read(self, masked: str) -> Future[list[Finding]]:
        """The classifier's findings on a text `InputGuard.scan_now` left to it."""
        return self.submit(_read, masked)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run a picklable call in the child (tests ask it for its priority)."""
        with self._lock:
            if self._pool is None:
                self._pool = self._start()
            try:
                return self._pool.submit(fn, *args)
            except BrokenProcessPool:  # the child died (killed, out of memory): a fresh one
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()
                return self._pool.submit(fn, *args)

    def warm(self) -> None:
        """Start the child and load its model now (the server's start-up), not at the first request."""
        self.read("warm up").result()

    def close(self) -> None:
        """Cancel the readings still queued and let the child exit (it finishes the one it is reading)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server's process has llama.cpp's and torch's threads, which a fork would not carry
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_reader,
                                   initargs=(self.nice,))  # fmt: skip


readers = Readers()
