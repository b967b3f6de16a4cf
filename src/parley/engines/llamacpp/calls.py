"""How one engine step becomes `llama_decode` calls: which sequences go in, under which adapter, in what
shape; then each output is sampled. A mixin of `ContinuousBatcher`, which owns the state it reads."""

from __future__ import annotations

import llama_cpp
import numpy as np

from parley.engines.base import AdapterRef
from parley.engines.llamacpp.batches import ballast_for, prefill_runs, run_chunk
from parley.engines.llamacpp.constrained import Candidates
from parley.engines.llamacpp.counters import BatcherCounters
from parley.engines.llamacpp.gguf_model import GGUFModel
from parley.engines.llamacpp.kv import Batch, SlotCaches
from parley.engines.llamacpp.sequence import PromptEvent, Sequence, Slot, TokenEvent, emit

Outputs = list[tuple[Sequence, int]]


class StepCalls:
    # the batcher's state this part reads and writes
    model: GGUFModel
    ctx: llama_cpp.llama_context_p
    batch: Batch
    cache: SlotCaches
    counters: BatcherCounters
    candidates: Candidates
    slots: list[Slot]
    streams: list[Slot]
    n_streams: int
    n_batch: int
    n_ctx_seq: int
    prefill_chunk: int
    deterministic: bool
    _ballast: list[Slot]
    _prompt_rows: list[tuple[Sequence, int, int]]

    def _ready_to_prefill(self, seq: Sequence) -> bool: ...  # admission: a follower may still wait

    def _finish(self, seq: Sequence, reason: str, error: str | None = None) -> None: ...

    def _decode_failed(self, rc: int, involved: list[Slot]) -> None: ...

    def _adapter_groups(self) -> list[AdapterRef | None]:
        """The adapters (None: the base model) of the sequences with work, the oldest request's first: one
        call each per step."""
        busy = sorted((s.seq for s in self.slots if s.seq is not None), key=lambda q: q.order)
        return list(dict.fromkeys(q.adapter for q in busy))

    def _put_decoding(self, outputs: Outputs, involved: list[Slot], group: AdapterRef | None) -> None:
        for slot in self.slots:  # one token for every sequence of the group that is decoding
            seq = slot.seq
            if seq is not None and seq.pending is not None and seq.adapter == group:
                outputs.append((seq, self._put(seq.pending, slot, True)))
                involved.append(slot)
                seq.pending = None

    def _prefilling(self, group: AdapterRef | None) -> list[Sequence]:
        waiting = sorted(
            (s.seq for s in self.slots if s.seq and s.seq.adapter == group and s.seq.n_prompt_done < len(s.seq.prompt)),
            key=lambda q: q.order,
        )
        return [q for q in waiting if self._ready_to_prefill(q)]

    def _put_prompt(self, seq: Sequence, take: int, outputs: Outputs) -> None:
        assert seq.slot is not None
        i = -1
        every = seq.prompt_lp is not None  # the prompt's own log-probabilities: logits at every position
        for pos, token in enumerate(seq.prompt[seq.n_prompt_done : seq.n_prompt_done + take], seq.n_prompt_done):
            i = self._put(token, seq.slot, every)
            if every and pos + 1 < len(seq.prompt):
                self._prompt_rows.append((seq, i, pos + 1))
        seq.n_prompt_done += take
        if seq.n_prompt_done == len(seq.prompt):
            self.batch.want_logits(i)
            outputs.append((seq, i))

    def _step(self, group: AdapterRef | None) -> None:
        """One call: every decoding sequence's next token, then prompt chunks, oldest request first."""
        outputs: list[tuple[Sequence, int]] = []
        involved: list[Slot] = []
        self._put_decoding(outputs, involved, group)
        for seq in self._prefilling(group):
            take = min(self.n_batch - self.batch.n, self.prefill_chunk, len(seq.prompt) - seq.n_prompt_done)
            if take <= 0:
                break
            self._put_prompt(seq, take, outputs)
            involved.append(seq.slot)  # type: ignore[arg-type]
        self._decode(outputs, involved)

    def _step_shaped(self, group: AdapterRef | None) -> None:
        """The deterministic step: a decode call, then one call per run of consecutive prefilling slots, each
        shaped by `batches` (equal rows per slot, under 64, never one token of one stream alone)."""
        outputs: list[tuple[Sequence, int]] = []
        involved: list[Slot] = []
        self._put_decoding(outputs, involved, group)
        if outputs:
            self._pad([s.id for s in involved])
            self._decode(outputs, involved)
        budget = self.n_batch - len(outputs)
        ready = {q.slot.id: q for q in self._prefilling(group) if q.slot is not None}
        runs = sorted(prefill_runs(list(ready)), key=lambda run: min(ready[i].order for i in run))
        for run in runs:  # the run holding the oldest request first
            seqs = [ready[i] for i in run]
            take = run_chunk([len(q.prompt) - q.n_prompt_done for q in seqs], budget, self.prefill_chunk)
            if take <= 0:
                break
            outputs, involved = [], []
            for seq in seqs:
                self._put_prompt(seq, take, outputs)
                involved.append(seq.slot)  # type: ignore[arg-type]
            if take == 1:
                self._pad(run)
            budget -= self.batch.n
            self._decode(outputs, involved)

    def _pad(self, ids: list[int]) -> None:
        """Add ballast tokens (batches.ballast_for); `_decode` takes them out of the cache again."""
        for i in ballast_for(ids, self.n_streams):
            slot = self.streams[i]
            if len(slot.tokens) >= self.n_ctx_seq:  # a full cache gives up its last token to make room
                self.cache.keep(slot, len(slot.tokens) - 1)
            self.batch.add(0, len(slot.tokens), slot.id, False)
            self._ballast.append(slot)

    def _decode(self, outputs: Outputs, involved: list[Slot]) -> None:
        if self.batch.n == 0:
            return
        rows, self._prompt_rows = self._prompt_rows, []
        if self.deterministic:
            moved = self.batch.sort_by_sequence()  # ballast rows were appended: one micro-batch needs id order
            outputs = [(seq, moved[i]) for seq, i in outputs]
            rows = [(seq, moved[i], pos) for seq, i, pos in rows]
            if len(outputs) == 1:
                # ggml takes the rows that want logits through the output matmul together: one row takes a
                # matrix-vector kernel, two or more a matrix-matrix one, and they can round differently.
                self.batch.want_logits(next(i for i in range(self.batch.n) if i != outputs[0][1]))
        self.batch.raw.n_tokens = self.batch.n
        self.batch.n = 0
        rc = llama_cpp.llama_decode(self.ctx, self.batch.raw)
        self.cache.decoded()
        for slot in self._ballast:
            self.cache.forget_after(slot, len(slot.tokens))
        self._ballast = []
        self.counters.steps += 1
        if rc != 0:
            self._decode_failed(rc, involved)
            return
        for seq, idx, pos in rows:
            if seq.prompt_lp is not None:
                token = seq.prompt[pos]
                seq.prompt_lp.append((token, *self._logprobs(idx, token, seq.params.logprobs or 0)))
        for seq, idx in outputs:
            self._sample(seq, idx)

    def _logprobs(self, idx: int, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
        """The log-softmax of output row `idx`'s raw logits at `token`, and the `k` most likely tokens."""
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, idx), shape=(self.model.n_vocab,))
        row = row.astype(np.float64)
        top = row.max()
        lse = top + np.log(np.exp(row - top).sum())
        best: list[tuple[int, float]] = []
        if k > 0:
            ids = np.argpartition(-row, k)[:k]
            ids = ids[np.argsort(-row[ids], kind="stable")]
            best = [(int(i), float(row[i] - lse)) for i in ids]
        return float(row[token] - lse), best

    def _sample(self, seq: Sequence, idx: int) -> None:
        if seq.prompt_lp is not None:  # the prompt is complete: its log-probabilities go first
            emit(seq, PromptEvent(seq.prompt_lp))
            seq.prompt_lp = None
        lazy = seq.lazy
        if lazy is not None and lazy.forced:
            token = lazy.forced.popleft()
            llama_cpp.llama_sampler_accept(seq.sampler, token)
        elif seq.grammar is not None:
            drawn = self.candidates.sample(self.ctx, idx, seq.sampler, seq.grammar)
            if drawn is None:  # the grammar is done and the request forbids the end (ignore_eos): end here
                self.counters.finished += 1
                self._finish(seq, "stop")
                return
            token = drawn
        else:
            token = llama_cpp.llama_sampler_sample(seq.sampler, self.ctx, idx)
            if lazy is not None and not lazy.ready and not self.model.is_eog(token):
                tokenize = lambda data: self.model.tokenize_bytes(data, add_special=False, parse_special=True)  # noqa: E731
                instead = lazy.watch(self.model.piece(token, special=True), tokenize)
                if instead:
                    token = instead[0]
                    lazy.forced.extend(instead[1:])
                    self.counters.lazy_grammar_rewrites += 1
        if self.model.is_eog(token) and not seq.params.ignore_eos:
            self.counters.finished += 1
            self._finish(seq, "stop")
            return
        seq.n_generated += 1
        self.counters.generated_tokens += 1
        event = TokenEvent(token, self.model.piece(token))
        if seq.params.logprobs is not None:
            event.logprob, event.top = self._logprobs(idx, token, seq.params.logprobs)
        emit(seq, event)
        if lazy is not None and lazy.ready and not lazy.forced and not lazy.armed:
            seq.grammar, lazy.grammar, lazy.armed = lazy.grammar, None, True  # the trigger is complete
            self.counters.lazy_grammar_armed += 1
        assert seq.slot is not None
        if seq.n_generated >= seq.params.max_tokens or len(seq.slot.tokens) + 1 >= self.n_ctx_seq:
            self.counters.finished += 1
            self._finish(seq, "length")
        else:
            seq.pending = token

