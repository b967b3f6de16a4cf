"""Where a new request goes, and which already-computed prompt prefix it starts from.

A request reuses, in order of preference, the longest of:
- the cache of the free slot it is placed in (the previous turn of the same chat, the same system prompt);
- the cache of any other slot, copied in (`llama_memory_seq_cp` shares the cells: no compute, no copy of data);
- the prefix a request admitted in the same round, or one still computing its prompt, is about to compute: it
  follows that leader and copies the prefix once it is in the cache, instead of computing the same tokens in
  parallel.

A cache is reused only under the adapter it was computed with: the same tokens under another LoRA adapter are
other keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.engines.llamacpp.sequence import Sequence, Slot

MIN_GAIN = 8  # tokens: below this a copy or a wait is not worth it


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class Placement:
    slot: Slot
    reuse: int  # tokens of the slot's own cache that stay
    copy_from: Slot | None = None
    copy_len: int = 0
    leader: Sequence | None = None
    follow_len: int = 0


def cached(slot: Slot, seq: Sequence) -> int:
    """Tokens of the slot's cache that `seq` can use as its own."""
    return common_prefix(slot.tokens, seq.prompt) if slot.adapter == seq.adapter else 0


def place(
    seq: Sequence, free: list[Slot], others: list[Slot], round_: list[Sequence], *, compact: bool = False
) -> Placement:
    """`others`: slots whose cache may be copied (empty when caches cannot be shared);
    `round_`: requests whose prompts are not computed yet (admitted just before this one, or still prefilling);
    `compact`: take the lowest free slot (busy slots stay contiguous) and copy any useful prefix into it."""
    limit = max(len(seq.prompt) - 1, 0)  # the last prompt token is always decoded: its logits start the answer
    slot = min(free, key=lambda s: s.id) if compact else max(free, key=lambda s: (cached(s, seq), -s.last_used))
    plan = Placement(slot, min(cached(slot, seq), limit))
    best = plan.reuse
    for other in others:
        n = min(cached(other, seq), limit)
        if other is not slot and n >= best + MIN_GAIN:
            plan.copy_from, plan.copy_len, best = other, n, n
    if others:
        for leader in round_:
            n = min(common_prefix(leader.prompt, seq.prompt), limit) if leader.adapter == seq.adapter else 0
            if n >= best + MIN_GAIN:
                plan.leader, plan.follow_len, best = leader, n, n
    return plan
