"""How the deterministic mode shapes each `llama_decode` call so that no sequence's logits depend on others.

ggml's CPU kernels choose a code path by the shape of the batch, and the paths round differently:
- flash attention takes a tiled kernel once a stream has 64 or more query rows in a micro-batch;
- it splits the KV range across threads when a micro-batch holds one token of one stream (and the stream has
  512 or more KV cells);
- with per-slot KV streams, llama.cpp puts only consecutive sequence ids in one micro-batch, so a gap in the
  busy slots splits a step into several micro-batches, some of them single-stream.

So every call here holds equal token counts per slot, under 64, over consecutive slots, and never one token of
one stream alone: gaps and lone tokens are padded with a "ballast" token in an idle neighbour slot, removed
right after the call. With these shapes each token's attention runs the per-row kernel over its own cells in
position order, and each matmul row is an independent dot product, whatever else is in the batch.
"""

from __future__ import annotations

MAX_ROWS_PER_STREAM = 63  # ggml's CPU flash attention tiles at 64 query rows (GGML_FA_TILE_Q)


def ballast_for(ids: list[int], n_slots: int) -> list[int]:
    """Slots to pad so that the `ids` of a one-token-per-slot call form one consecutive run of two or more."""
    if not ids:
        return []
    lo, hi = min(ids), max(ids)
    pad = [i for i in range(lo, hi + 1) if i not in set(ids)]
    if lo == hi:
        pad.append(hi + 1 if hi + 1 < n_slots else lo - 1)
    return pad


def prefill_runs(ids: list[int]) -> list[list[int]]:
    """Slot ids grouped into runs of consecutive ids, in order (one call per run)."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def run_chunk(remaining: list[int], budget: int, limit: int) -> int:
    """Tokens each slot of a run computes in one call: equal for all, under the tiling threshold and the
    per-request chunk limit, within the step's token budget."""
    if not remaining or budget < len(remaining):
        return 0
    return max(min(min(remaining), MAX_ROWS_PER_STREAM, limit, budget // len(remaining)), 0)
