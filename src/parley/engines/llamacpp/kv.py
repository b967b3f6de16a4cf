"""The KV cache as the scheduler sees it: one cache per slot, whose contents `Slot.tokens` mirrors.

Two layouts:
- unified: one buffer for all slots; a prefix is shared by tagging the same cells with another sequence id
  (no data moves);
- split: one stream per slot; llama.cpp copies only whole streams, so a prefix copy is a stream copy cut back.
"""

from __future__ import annotations

import llama_cpp

from parley.engines.llamacpp.sequence import Slot


class SlotCaches:
    def __init__(self, ctx: llama_cpp.llama_context_p, *, unified: bool) -> None:
        self.mem = llama_cpp.llama_get_memory(ctx)
        self.unified = unified
        # Split layout: llama.cpp queues a stream copy and moves the data at the next `llama_decode`. Until then
        # the destination's cells hold the old data, so it must not be copied from.
        self.copying: set[int] = set()

    def keep(self, slot: Slot, n: int) -> int:
        """Cut the slot's cache to its first `n` tokens; all of it if llama.cpp cannot cut there. Returns
        how many tokens stay."""
        if n < len(slot.tokens) and not llama_cpp.llama_memory_seq_rm(self.mem, slot.id, n, -1):
            n = 0
            llama_cpp.llama_memory_seq_rm(self.mem, slot.id, -1, -1)
        del slot.tokens[n:]
        return n

    def clear(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self.mem, slot.id, -1, -1)
        slot.tokens.clear()
        slot.adapter = None

    def copy_prefix(self, src: Slot, dst: Slot, n: int) -> None:
        """Make `dst` hold the first `n` tokens of `src`'s cache."""
        if self.unified:
            llama_cpp.llama_memory_seq_rm(self.mem, dst.id, -1, -1)
            llama_cpp.llama_memory_seq_cp(self.mem, src.id, dst.id, 0, n)
        else:  # only whole streams can be copied: (-1, -1), then cut back
            assert src.id not in self.copying, "copying from a stream whose own copy is not done"
            llama_cpp.llama_memory_seq_cp(self.mem, src.id, dst.id, -1, -1)
            llama_cpp.llama_memory_seq_rm(self.mem, dst.id, n, -1)
            self.copying.add(dst.id)
        dst.tokens = src.tokens[:n]
        dst.adapter = src.adapter

    def decoded(self) -> None:
        """A `llama_decode` ran: every queued stream copy is done."""
        self.copying.clear()

    def forget_after(self, slot: Slot, pos: int) -> None:
        """Drop cells from `pos` on that `slot.tokens` does not list (a ballast token)."""
        llama_cpp.llama_memory_seq_rm(self.mem, slot.id, pos, -1)


class Batch:
    """The context's one `llama_batch`, allocated once and filled for each call."""

    def __init__(self, capacity: int) -> None:
        self.raw = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.n = 0

    def add(self, token: int, pos: int, seq_id: int, logits: bool) -> int:
        b, i = self.raw, self.n
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
        b.seq_id[i][0] = seq_id
        self.n += 1
        return i

    def want_logits(self, i: int) -> None:
        self.raw.logits[i] = True

    def sort_by_sequence(self) -> list[int]:
        """Reorder the rows by sequence id (stably); returns each old row's new index. llama.cpp puts only
        consecutive ids, *in batch order*, into one micro-batch of a split KV cache."""
        b, n = self.raw, self.n
        rows = [(b.seq_id[i][0], i, b.token[i], b.pos[i], b.logits[i]) for i in range(n)]
        rows.sort(key=lambda r: (r[0], r[1]))
        moved = [0] * n
        for new, (seq, old, token, pos, logits) in enumerate(rows):
            b.seq_id[new][0], b.token[new], b.pos[new], b.logits[new], b.n_seq_id[new] = seq, token, pos, logits, 1
            moved[old] = new
        return moved

    def free(self) -> None:
        llama_cpp.llama_batch_free(self.raw)
