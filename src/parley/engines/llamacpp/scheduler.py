"""Continuous batching over one llama.cpp context with N sequence slots.

One background thread owns the context and runs the step loop:
admit waiting requests into free slots (reusing the longest cached prompt prefix) → build one batch of
one token per decoding sequence plus bounded prompt chunks → `llama_decode` → sample each sequence with its own
sampler chain → hand each token to its request through a thread-safe callback.
ctypes releases the GIL inside `llama_decode`, so the asyncio side keeps serving while the model computes.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import llama_cpp

from parley.engines.base import SamplingParams
from parley.engines.llamacpp.gguf_model import GGUFModel
from parley.engines.llamacpp.prefix import place
from parley.errors import ContextLengthExceeded, EngineOverloaded, InvalidRequest

log = logging.getLogger(__name__)


@dataclass
class TokenEvent:
    token: int
    piece: bytes


@dataclass
class DoneEvent:
    finish_reason: str  # stop | length | cancelled | error
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    error: str | None = None


Event = TokenEvent | DoneEvent


@dataclass(eq=False)
class Sequence:
    """One request in flight. Fields after `emit` belong to the scheduler thread."""

    id: str
    prompt: list[int]
    params: SamplingParams
    sampler: llama_cpp.llama_sampler_p | None
    emit: Callable[[Event], None]
    cancelled: bool = False
    slot: Slot | None = None
    n_prompt_done: int = 0
    n_cached: int = 0
    n_generated: int = 0
    pending: int | None = None  # sampled but not yet decoded
    order: int = 0
    follow: tuple[Sequence, int] | None = None  # (leader, tokens): copy the leader's prefix once computed


@dataclass(eq=False)
class Slot:
    id: int  # the llama.cpp sequence id
    tokens: list[int] = field(default_factory=list)  # what the KV cache holds for this sequence, in order
    seq: Sequence | None = None
    last_used: float = 0.0


@dataclass
class BatcherCounters:
    steps: int = 0
    admitted: int = 0
    rejected: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    prompt_tokens_cached: int = 0
    generated_tokens: int = 0
    decode_errors: int = 0


class ContinuousBatcher:
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
    ) -> None:
        self.model = model
        self.max_queue = max_queue
        self.prefill_chunk = prefill_chunk
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = ctx_per_slot * slots
        cparams.n_batch = cparams.n_ubatch = max(batch_tokens, slots)
        cparams.n_seq_max = slots
        cparams.n_threads = cparams.n_threads_batch = threads
        # A unified KV cache lets sequences share cells, so a prompt prefix computed once serves every slot
        # (measured: ~7% slower decode at 16 short sequences than split per-slot caches, which cannot share).
        # Recurrent and hybrid models copy whole states, not prefixes: no sharing for them.
        recurrent = llama_cpp.llama_model_is_recurrent(model.ptr) or llama_cpp.llama_model_is_hybrid(model.ptr)
        share_prefixes = share_prefixes and not recurrent
        cparams.kv_unified = share_prefixes
        if kv_cache == "q8_0":  # a quantised V cache needs flash attention
            cparams.type_k = cparams.type_v = llama_cpp.GGML_TYPE_Q8_0
            cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cparams.no_perf = True
        self.share_prefixes = share_prefixes
        self.ctx = llama_cpp.llama_init_from_model(model.ptr, cparams)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context (out of memory?)")
        self.n_batch = cparams.n_batch
        self.n_ctx_seq: int = ctx_per_slot if share_prefixes else llama_cpp.llama_n_ctx_seq(self.ctx)
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)  # allocated once
        self.slots = [Slot(i) for i in range(slots)]
        self.counters = BatcherCounters()
        self._waiting: deque[Sequence] = deque()
        self._inbox: deque[Sequence] = deque()
        self._lock = threading.Lock()
        self._n_queued = 0  # submitted, not yet holding a slot (guarded by _lock)
        self._n_free = slots  # (guarded by _lock)
        self._wake = threading.Event()
        self._closing = False
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name="parley-batcher", daemon=True)
        self._thread.start()

    # ---- called from any thread -----------------------------------------------------------------

    def submit(self, seq: Sequence) -> None:
        if not seq.prompt:
            raise InvalidRequest("The prompt is empty: there is nothing to continue.", param="prompt")
        if len(seq.prompt) >= self.n_ctx_seq:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.n_ctx_seq} tokens; "
                f"the prompt has {len(seq.prompt)}.",
                param="messages",
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

    def cancel(self, seq: Sequence) -> None:
        seq.cancelled = True
        self._wake.set()

    def status(self) -> dict[str, object]:
        with self._lock:
            queued, free = self._n_queued, self._n_free
        c = self.counters
        return {
            "slots_total": len(self.slots),
            "slots_busy": len(self.slots) - free,
            "queued": queued,
            "max_queue": self.max_queue,
            "ctx_per_slot": self.n_ctx_seq,
            "steps": c.steps,
            "requests_admitted": c.admitted,
            "requests_rejected": c.rejected,
            "requests_cancelled": c.cancelled,
            "prompt_tokens": c.prompt_tokens,
            "prompt_tokens_cached": c.prompt_tokens_cached,
            "generated_tokens": c.generated_tokens,
            "decode_errors": c.decode_errors,
        }

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            log.error("batcher thread did not stop; leaking the llama.cpp context")
            return
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.ctx = None

    # ---- the scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._take_inbox()
            if self._closing:
                break
            self._reap_cancelled()
            self._admit()
            if not any(s.seq for s in self.slots):
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                self._step()
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

    def _take_inbox(self) -> None:
        with self._lock:
            while self._inbox:
                self._waiting.append(self._inbox.popleft())

    def _reap_cancelled(self) -> None:
        for seq in [s for s in self._waiting if s.cancelled]:
            self._waiting.remove(seq)
            with self._lock:
                self._n_queued -= 1
            self.counters.cancelled += 1
            self._finish(seq, "cancelled")
        for slot in self.slots:
            if slot.seq and slot.seq.cancelled:
                self.counters.cancelled += 1
                self._finish(slot.seq, "cancelled")

    def _admit(self) -> None:
        round_: list[Sequence] = []
        while self._waiting:
            free = [s for s in self.slots if s.seq is None]
            if not free:
                return
            seq = self._waiting.popleft()
            plan = place(seq.prompt, free, self.slots if self.share_prefixes else [], round_)
            slot, reuse = plan.slot, plan.reuse
            if plan.copy_from is not None:
                llama_cpp.llama_memory_seq_rm(self.mem, slot.id, -1, -1)
                llama_cpp.llama_memory_seq_cp(self.mem, plan.copy_from.id, slot.id, 0, plan.copy_len)
                slot.tokens = plan.copy_from.tokens[: plan.copy_len]
                reuse = plan.copy_len
            elif reuse < len(slot.tokens):
                if not llama_cpp.llama_memory_seq_rm(self.mem, slot.id, reuse, -1):
                    llama_cpp.llama_memory_seq_rm(self.mem, slot.id, -1, -1)
                    reuse = 0
                del slot.tokens[reuse:]
            if plan.leader is not None:
                seq.follow = (plan.leader, plan.follow_len)
            seq.slot, slot.seq = slot, seq
            seq.n_prompt_done = seq.n_cached = reuse
            round_.append(seq)
            with self._lock:
                self._n_queued -= 1
                self._n_free -= 1
            c = self.counters
            c.admitted += 1
            c.prompt_tokens += len(seq.prompt)
            c.prompt_tokens_cached += reuse

    def _ready_to_prefill(self, seq: Sequence) -> bool:
        """A follower waits while its leader computes the shared prefix, then copies it."""
        if seq.follow is None:
            return True
        leader, n = seq.follow
        src = leader.slot
        if src is not None and len(src.tokens) < n and leader.n_prompt_done < len(leader.prompt):
            return False  # the leader is still on its way to the shared prefix
        seq.follow = None
        if src is None or src.tokens[:n] != seq.prompt[:n]:
            return True  # the leader is gone (cancelled, failed): compute the prefix ourselves
        assert seq.slot is not None
        llama_cpp.llama_memory_seq_rm(self.mem, seq.slot.id, -1, -1)
        llama_cpp.llama_memory_seq_cp(self.mem, src.id, seq.slot.id, 0, n)
        seq.slot.tokens = seq.prompt[:n]
        self.counters.prompt_tokens_cached += n - seq.n_cached
        seq.n_prompt_done = seq.n_cached = n
        return True

    def _put(self, i: int, token: int, slot: Slot, logits: bool) -> None:
        b = self.batch
        b.token[i] = token
        b.pos[i] = len(slot.tokens)
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = slot.id
        b.logits[i] = logits
        slot.tokens.append(token)

    def _step(self) -> None:
        n = 0
        outputs: list[tuple[Sequence, int]] = []
        involved: list[Slot] = []
        for slot in self.slots:  # one token for every sequence that is decoding
            seq = slot.seq
            if seq is not None and seq.pending is not None:
                self._put(n, seq.pending, slot, True)
                outputs.append((seq, n))
                involved.append(slot)
                seq.pending = None
                n += 1
        prefilling = sorted(
            (s.seq for s in self.slots if s.seq and s.seq.n_prompt_done < len(s.seq.prompt)),
            key=lambda q: q.order,
        )
        prefilling = [q for q in prefilling if self._ready_to_prefill(q)]
        for seq in prefilling:  # then prompt chunks, oldest request first, within the step's budget
            take = min(self.n_batch - n, self.prefill_chunk, len(seq.prompt) - seq.n_prompt_done)
            if take <= 0:
                break
            assert seq.slot is not None
            for token in seq.prompt[seq.n_prompt_done : seq.n_prompt_done + take]:
                self._put(n, token, seq.slot, False)
                n += 1
            seq.n_prompt_done += take
            involved.append(seq.slot)
            if seq.n_prompt_done == len(seq.prompt):
                self.batch.logits[n - 1] = True
                outputs.append((seq, n - 1))
        if n == 0:
            return
        self.batch.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, self.batch)
        self.counters.steps += 1
        if rc != 0:
            self._decode_failed(rc, involved)
            return
        for seq, idx in outputs:
            self._sample(seq, idx)

    def _sample(self, seq: Sequence, idx: int) -> None:
        token = llama_cpp.llama_sampler_sample(seq.sampler, self.ctx, idx)
        if self.model.is_eog(token) and not seq.params.ignore_eos:
            self._finish(seq, "stop")
            return
        seq.n_generated += 1
        self.counters.generated_tokens += 1
        _emit(seq, TokenEvent(token, self.model.piece(token)))
        assert seq.slot is not None
        if seq.n_generated >= seq.params.max_tokens or len(seq.slot.tokens) + 1 >= self.n_ctx_seq:
            self._finish(seq, "length")
        else:
            seq.pending = token

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
        llama_cpp.llama_memory_seq_rm(self.mem, slot.id, -1, -1)
        slot.tokens.clear()

    def _finish(self, seq: Sequence, reason: str, error: str | None = None) -> None:
        slot = seq.slot
        if slot is not None:
            slot.seq = None
            slot.last_used = time.monotonic()
            seq.slot = None
            with self._lock:
                self._n_free += 1
        if seq.sampler:
            llama_cpp.llama_sampler_free(seq.sampler)
            seq.sampler = None
        _emit(seq, DoneEvent(reason, len(seq.prompt), seq.n_generated, seq.n_cached, error))


def _emit(seq: Sequence, event: Event) -> None:
    try:
        seq.emit(event)
    except RuntimeError:  # the consumer's event loop is gone (shutdown)
        seq.cancelled = True
