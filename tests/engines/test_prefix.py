"""Where a request goes and which cached prefix it starts from (pure placement logic, no model)."""

from __future__ import annotations

from parley.engines.base import AdapterRef, SamplingParams
from parley.engines.llamacpp.prefix import MIN_GAIN, place
from parley.engines.llamacpp.sequence import Sequence, Slot

SYSTEM = list(range(100, 140))


def seq(tokens, adapter=None):
    return Sequence("r", tokens, SamplingParams(max_tokens=4), None, lambda e: None, adapter=adapter)


def test_the_free_slot_with_the_longest_cached_prefix_is_chosen():
    a, b = Slot(0, tokens=[1, 2, 3]), Slot(1, tokens=[*SYSTEM, 7])
    plan = place(seq([*SYSTEM, 9, 9]), [a, b], [], [])
    assert plan.slot is b and plan.reuse == len(SYSTEM)


def test_a_longer_prefix_in_a_busy_slot_is_copied():
    free, busy = Slot(0, tokens=[5]), Slot(1, tokens=[*SYSTEM, 1, 2])
    plan = place(seq([*SYSTEM, 3]), [free], [free, busy], [])
    assert plan.copy_from is busy and plan.copy_len == len(SYSTEM)


def test_a_small_gain_is_not_worth_a_copy():
    free, busy = Slot(0, tokens=SYSTEM[:10]), Slot(1, tokens=SYSTEM[: 10 + MIN_GAIN - 1])
    plan = place(seq([*SYSTEM, 3]), [free], [free, busy], [])
    assert plan.copy_from is None and plan.reuse == 10


def test_a_cache_is_reused_only_under_the_same_adapter():
    tuned = AdapterRef("support-v2")
    base_slot, tuned_slot = Slot(0, tokens=[*SYSTEM, 1]), Slot(1, tokens=[*SYSTEM, 2], adapter=tuned)
    plain = place(seq([*SYSTEM, 5]), [base_slot, tuned_slot], [], [])
    assert plain.slot is base_slot and plain.reuse == len(SYSTEM)
    with_adapter = place(seq([*SYSTEM, 5], adapter=tuned), [base_slot, tuned_slot], [], [])
    assert with_adapter.slot is tuned_slot and with_adapter.reuse == len(SYSTEM)
    other = place(seq([*SYSTEM, 5], adapter=AdapterRef("other")), [base_slot], [base_slot, tuned_slot], [])
    assert other.reuse == 0 and other.copy_from is None


def test_a_request_follows_a_leader_of_the_same_round_under_the_same_adapter_only():
    leader = seq([*SYSTEM, 1, 2, 3])
    free = Slot(1)
    follows = place(seq([*SYSTEM, 4]), [free], [free], [leader])
    assert follows.leader is leader and follows.follow_len == len(SYSTEM)
    alone = place(seq([*SYSTEM, 4], adapter=AdapterRef("x")), [free], [free], [leader])
    assert alone.leader is None


def test_compact_placement_takes_the_lowest_free_slot_and_copies_the_prefix():
    low, high = Slot(0, tokens=[9]), Slot(3, tokens=[*SYSTEM, 1])
    plan = place(seq([*SYSTEM, 2]), [high, low], [low, high], [], compact=True)
    assert plan.slot is low
    assert plan.copy_from is high and plan.copy_len == len(SYSTEM)
