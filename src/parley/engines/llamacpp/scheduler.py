"""Continuous batching over one llama.cpp context with N sequence slots.

One background thread owns the context and runs the step loop:
admit waiting requests into free slots (reusing the longest cached prompt prefix) → build one batch of
one token per decoding sequence plus bounded prompt chunks → `llama_decode` → sample each sequence with its own
sampler chain → hand each token to its request through a thread-safe callback.
ctypes releases the GIL inside `llama_decode`, so the asyncio side keeps serving while the model computes.

Two KV layouts:
- unified (the default): one KV buffer for all slots; a prompt prefix is shared by pointing several sequences at
  the same cells. Fastest to share, but a sequence's logits depend on what else is in the cache and the batch.
- split (`deterministic`): one KV stream per slot; prefixes are shared by copying a stream, and every call is
  shaped by `batches` so that a sequence's logits are bit-identical whatever else runs (docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import llama_cpp

from parley.engines.llamacpp.adapters import ContextAdapters
from parley.engines.llamacpp.calls import StepCalls
from parley.engines.llamacpp.constrained import Candidates
from parley.engines.llamacpp.counters import BatcherCounters
from parley.engines.llamacpp.gguf_model import GGUFModel
from parley.engines.llamacpp.kv import Batch, SlotCaches
from parley.engines.llamacpp.prefix import place
from parley.engines.llamacpp.sequence import CANCEL, STOP, DoneEvent, Sequence, Slot, emit
from parley.errors import ContextLengthExceeded, EngineOverloaded, InvalidRequest

log = logging.getLogger(__name__)


class ContinuousBatcher(StepCalls):
    def __init__(
        self,
        model: GGUFModel,
        *,
        slots: int,
        ctx_per_slot: int,
        batch_tokens: int,
        prefill_chunk: int,
        max_queue: int,
        threads: int,
        share_prefixes: bool = True,
        kv_cache: str = "f16",
        deterministic: bool = False,
    ) -> None:
        self.model = model
        self.max_queue = max_queue
        self.prefill_chunk = prefill_chunk
        # Recurrent and hybrid models copy whole states, not prefixes: no sharing for them.
        recurrent = llama_cpp.llama_model_is_recurrent(model.ptr) or llama_cpp.llama_model_is_hybrid(model.ptr)
        self.share_prefixes = share_prefixes and not recurrent
        self.deterministic = deterministic
        self.unified = self.share_prefixes and not deterministic
        # The deterministic mode keeps one spare stream that is never given a request: a ballast neighbour is
        # always available (batches.ballast_for).
        self.n_streams = slots + (1 if deterministic else 0)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = ctx_per_slot * self.n_streams
        cparams.n_batch = cparams.n_ubatch = max(batch_tokens, self.n_streams)
        cparams.n_seq_max = self.n_streams
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.kv_unified = self.unified
        if kv_cache == "q8_0" or deterministic:
            # A quantised V cache needs flash attention; the deterministic shapes assume its per-row kernel.
            cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if kv_cache == "q8_0":
            cparams.type_k = cparams.type_v = llama_cpp.GGML_TYPE_Q8_0
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(model.ptr, cparams)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context (out of memory?)")
        self.n_batch = cparams.n_batch
        self.n_ctx_seq: int = ctx_per_slot if self.unified else llama_cpp.llama_n_ctx_seq(self.ctx)
        self.cache = SlotCaches(self.ctx, unified=self.unified)
        self.batch = Batch(self.n_batch)
        self.slots = [Slot(i) for i in range(slots)]
        self.streams = self.slots + [Slot(i) for i in range(slots, self.n_streams)]  # the spare, if any
        self.counters = BatcherCounters()
        self.candidates = Candidates(model.n_vocab)
        self.adapters = ContextAdapters(model)
        self._tasks: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._waiting: deque[Sequence] = deque()
        self._inbox: deque[Sequence] = deque()
        self._lock = threading.Lock()
        self._n_queued = 0  # submitted, not yet holding a slot (guarded by _lock)
        self._n_free = slots  # (guarded by _lock)
        self._wake = threading.Event()
        self._closing = False
        self._order = itertools.count()
        self._ballast: list[Slot] = []  # padding in the call being built (deterministic mode)
        self._prompt_rows: list[tuple[Sequence, int, int]] = []  # (seq, row, prompt position it predicts)
        self._thread = threading.Thread(target=self._run, name="parley-batcher", daemon=True)
        self._thread.start()

    # ---- called from any thread -----------------------------------------------------------------

    def submit(self, seq: Sequence) -> None:
        if not seq.prompt:
            raise InvalidRequest("The prompt is empty: there is nothing to continue.", param="prompt")
        if len(seq.prompt) >= self.n_ctx_seq:  # the pipeline checks first; this guards direct callers
            raise ContextLengthExceeded(
                f"The prompt has {len(seq.prompt)} tokens; this engine holds {self.n_ctx_seq} per sequence."
            )
        with self._lock:
            if self._closing:
                raise EngineOverloaded("the engine is shutting down", headers={"Retry-After": "5"})
            if self._n_queued >= self.max_queue + self._n_free:
                self.counters.rejected += 1
                raise EngineOverloaded(
                    f"All {len(self.slots)} slots are busy and {self.max_queue} requests are queued; "
                    "retry shortly.",
                    headers={"Retry-After": "1"},
                )
            self._n_queued += 1
            seq.order = next(self._order)
            self._inbox.append(seq)
        self._wake.set()

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the scheduler thread between two steps (what touches the context or the model's adapter
        list must not race a decode)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closing:
                raise EngineOverloaded("the engine is shutting down", headers={"Retry-After": "5"})
            self._tasks.append((fn, future))
        self._wake.set()
        return future

    def end(self, seq: Sequence, why: str = CANCEL) -> None:
        """Ask for `seq` to end (CANCEL or STOP); a no-op once it has finished."""
        if seq.end_requested is None:
            seq.end_requested = why
        self._wake.set()

    def status(self) -> dict[str, object]:
        with self._lock:
            queued, free = self._n_queued, self._n_free
        return {
            "slots_total": len(self.slots),
            "slots_busy": len(self.slots) - free,
            "queued": queued,
            "max_queue": self.max_queue,
            "ctx_per_slot": self.n_ctx_seq,
            "kv_layout": "unified" if self.unified else "split",
            "deterministic": self.deterministic,
            "adapters_loaded": self.adapters.names(),
            "adapter_switches": self.adapters.switches,
            **self.counters.report(),
        }

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            log.error("batcher thread did not stop; leaking the llama.cpp context")
            return
        self.batch.free()
        llama_cpp.llama_free(self.ctx)
        self.ctx = None
        self.adapters.close()

    # ---- the scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._take_inbox()
            self._run_tasks()
            if self._closing:
                break
            self._reap_ended()
            self._sweep_adapters()
            self._admit()
            if not any(s.seq for s in self.slots):
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                for group in self._adapter_groups():
                    self.adapters.apply(self.ctx, group)
                    self._step_shaped(group) if self.deterministic else self._step(group)
            except Exception as exc:  # a bug in one step must not kill every stream silently
                log.exception("engine step failed")
                self.counters.decode_errors += 1
                for slot in self.slots:
                    if slot.seq:
                        self._reset_slot(slot)
                        self._finish(slot.seq, "error", error=f"engine step failed: {exc}")
        self._take_inbox()  # a request submitted just before close() must hear that it ended, not hang
        for seq in list(self._waiting) + [s.seq for s in self.slots if s.seq]:
            self._finish(seq, "error", error="the engine shut down")
        self._run_tasks()

    def _run_tasks(self) -> None:
        while True:
            with self._lock:
                if not self._tasks:
                    return
                fn, future = self._tasks.popleft()
            try:
                future.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - not swallowed: the caller gets it
                future.set_exception(exc)

    def _sweep_adapters(self) -> None:
        """Free unloaded adapters once unused; caches computed under them can never be reused: drop them."""
        in_use = {q.adapter for q in self._waiting} | {s.seq.adapter for s in self.slots if s.seq}
        for ref in self.adapters.sweep(self.ctx, in_use):
            for slot in self.slots:
                if slot.adapter == ref:
                    self._reset_slot(slot)

    def _take_inbox(self) -> None:
        with self._lock:
            while self._inbox:
                self._waiting.append(self._inbox.popleft())

    def _reap_ended(self) -> None:
        for seq in [s for s in self._waiting if s.end_requested]:
            self._waiting.remove(seq)
            with self._lock:
                self._n_queued -= 1
            self._end_early(seq)
        for slot in self.slots:
            if slot.seq and slot.seq.end_requested:
                self._end_early(slot.seq)

    def _end_early(self, seq: Sequence) -> None:
        if seq.end_requested == STOP:
            self.counters.stopped += 1
            self._finish(seq, "stop")
        else:
            self.counters.cancelled += 1
            self._finish(seq, "cancelled")

    def _admit(self) -> None:
        round_: list[Sequence] = []
        while self._waiting:
            free = [s for s in self.slots if s.seq is None]
            if not free:
                return
            seq = self._waiting.popleft()
            whole = seq.params.prompt_logprobs  # logits wanted at every prompt position: nothing is reused
            others, leaders = [], []
            if self.share_prefixes and not whole:
                others = [s for s in self.slots if s.id not in self.cache.copying]
                # leaders: requests admitted this round, and those admitted before that are still computing their
                # prompt (a burst arrives over several steps: its later requests follow the first one's prefix)
                busy = [s.seq for s in self.slots if s.seq is not None]
                leaders = round_ + [q for q in busy if q.n_prompt_done < len(q.prompt) and q not in round_]
            plan = place(seq, free, others, leaders, compact=self.deterministic)
            slot, reuse = plan.slot, 0 if whole else plan.reuse
            if whole:
                seq.prompt_lp = [(seq.prompt[0], None, [])]
            if plan.copy_from is not None:
                self._copy_prefix(plan.copy_from, slot, plan.copy_len)
                reuse = plan.copy_len
            else:
                reuse = self.cache.keep(slot, reuse if slot.adapter == seq.adapter else 0)
            slot.adapter = seq.adapter
            if plan.leader is not None:
                seq.follow = (plan.leader, plan.follow_len)
            seq.slot, slot.seq = slot, seq
            seq.scheduled = time.perf_counter()
            seq.n_prompt_done = seq.n_cached = reuse
            round_.append(seq)
            with self._lock:
                self._n_queued -= 1
                self._n_free -= 1
            c = self.counters
            c.admitted += 1
            c.prompt_tokens += len(seq.prompt)
            c.prompt_tokens_cached += reuse

    def _copy_prefix(self, src: Slot, dst: Slot, n: int) -> None:
        self.cache.copy_prefix(src, dst, n)
        self.counters.prefix_copies += 1

    def _ready_to_prefill(self, seq: Sequence) -> bool:
        """A follower waits while its leader computes the shared prefix, then copies it."""
        if seq.follow is None:
            return True
        leader, n = seq.follow
        src = leader.slot
        if src is not None and len(src.tokens) < n and leader.n_prompt_done < len(leader.prompt):
            return False  # the leader is still on its way to the shared prefix
        if src is not None and src.id in self.cache.copying:
            return False  # the leader's own prefix copy lands with the next call
        seq.follow = None
        if src is None or src.tokens[:n] != seq.prompt[:n] or src.adapter != seq.adapter:
            return True  # the leader is gone (cancelled, failed): compute the prefix ourselves
        assert seq.slot is not None
        self._copy_prefix(src, seq.slot, n)
        self.counters.prompt_tokens_cached += n - seq.n_cached
        seq.n_prompt_done = seq.n_cached = n
        return True

    def _put(self, token: int, slot: Slot, logits: bool) -> int:
        i = self.batch.add(token, len(slot.tokens), slot.id, logits)
        slot.tokens.append(token)
        return i

    def _decode_failed(self, rc: int, involved: list[Slot]) -> None:
        """rc 1: no room in the KV cache; rc < 0 or 2: failure. Either way only the sequences of this
        batch are failed; their slots are cleared so the next request starts from a clean cache."""
        self.counters.decode_errors += 1
        log.error("llama_decode returned %d for %d sequences", rc, len(involved))
        for slot in dict.fromkeys(involved):
            self._reset_slot(slot)
            if slot.seq:
                self._finish(slot.seq, "error", error=f"llama_decode failed (code {rc})")

    def _reset_slot(self, slot: Slot) -> None:
        self.cache.clear(slot)

    def _finish(self, seq: Sequence, reason: str, error: str | None = None) -> None:
        slot = seq.slot
        if slot is not None:
            slot.seq = None
            slot.last_used = time.monotonic()
            seq.slot = None
            with self._lock:
                self._n_free += 1
        seq.free_samplers()
        emit(seq, DoneEvent(reason, len(seq.prompt), seq.n_generated, seq.n_cached, error, seq.queue_s))
