"""Where a new request goes, and which already-computed prompt prefix it starts from.

A request reuses, in order of preference, the longest of:
- the cache of the free slot it is placed in (the previous turn of the same chat, the same system prompt);
- the cache of any other slot, copied in (`llama_memory_seq_cp` shares the cells: no compute, no copy of data);
- the prefix a request admitted in the same round is about to compute: it follows that leader and copies
  the prefix once it is in the cache, instead of computing the same tokens in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.engines.llamacpp.scheduler import Sequence, Slot

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


def place(prompt: list[int], free: list[Slot], others: list[Slot], round_: list[Sequence]) -> Placement:
    """`others`: slots whose cache may be copied (empty when the KV cache cannot share cells);
    `round_`: requests admitted just before this one, not computed yet."""
    limit = max(len(prompt) - 1, 0)  # the last prompt token is always decoded: its logits start the answer
    slot = max(free, key=lambda s: (common_prefix(s.tokens, prompt), -s.last_used))
    plan = Placement(slot, min(common_prefix(slot.tokens, prompt), limit))
    best = plan.reuse
    for other in others:
        n = min(common_prefix(other.tokens, prompt), limit)
        if other is not slot and n >= best + MIN_GAIN:
            plan.copy_from, plan.copy_len, best = other, n, n
    if others:
        for seq in round_:
            n = min(common_prefix(seq.prompt, prompt), limit)
            if n >= best + MIN_GAIN:
                plan.leader, plan.follow_len, best = seq, n, n
    return plan
