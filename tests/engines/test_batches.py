"""The shapes the deterministic mode gives each llama.cpp call (pure logic, no model)."""

from __future__ import annotations

import pytest

from parley.engines.llamacpp.batches import MAX_ROWS_PER_STREAM, ballast_for, prefill_runs, run_chunk


@pytest.mark.parametrize(
    ("ids", "pad"),
    [
        ([0, 1, 2], []),  # consecutive, several: one micro-batch as it is
        ([0, 2, 5], [1, 3, 4]),  # gaps are filled so llama.cpp keeps one micro-batch
        ([3], [4]),  # one stream alone gets a neighbour
        ([7], [6]),  # ... below it when it is the last stream
        ([], []),
    ],
)
def test_ballast_makes_one_run_of_two_or_more(ids, pad):
    assert ballast_for(ids, n_slots=8) == pad
    run = sorted(ids + pad)
    assert not run or (len(run) >= 2 and run == list(range(run[0], run[-1] + 1)))


def test_prefill_runs_group_consecutive_slots():
    assert prefill_runs([5, 0, 1, 3]) == [[0, 1], [3], [5]]


def test_run_chunks_are_equal_per_slot_and_under_the_tiling_threshold():
    assert run_chunk([500, 300], budget=512, limit=256) == MAX_ROWS_PER_STREAM
    assert run_chunk([10, 300], budget=512, limit=256) == 10
    assert run_chunk([100] * 16, budget=512, limit=256) == 32
    assert run_chunk([100] * 4, budget=3, limit=256) == 0
