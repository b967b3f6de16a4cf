"""The parameter bandit: ratings move the choice, buckets and profiles learn apart, exploration is bounded."""

from __future__ import annotations

import random

import pytest

from parley.params.bandit import DEFAULT_GRID, FULL_GRID, Arm, Bandit, apply, nearest_arm, reward

DEFAULT = Arm(0.5, 1.0, 1.0)
SHORT_AND_COOL = Arm(0.2, 1.0, 0.5)


def rate_many(bandit: Bandit, arm: Arm, rating: str, n: int, profile: str = "p", bucket: str = "simple") -> None:
    for _ in range(n):
        bandit.rate(profile, bucket, arm.id, rating)


def test_up_ratings_on_another_arm_move_the_exploit_choice_to_it():
    bandit = Bandit(explore=0.0)
    before = bandit.choose("p", "simple", random.Random(0))
    assert (before.arm, before.mode) == (DEFAULT, "default")
    rate_many(bandit, DEFAULT, "down", 3)
    rate_many(bandit, SHORT_AND_COOL, "up", 5)
    after = bandit.choose("p", "simple", random.Random(0))
    assert (after.arm, after.mode) == (SHORT_AND_COOL, "exploit")
    assert SHORT_AND_COOL.id in after.reason
    assert after.detail["arm"] == SHORT_AND_COOL.id and after.detail["bucket_ratings"] == 8


def test_a_rated_down_default_gives_way_to_an_untried_setting_without_exploring():
    bandit = Bandit(explore=0.0)
    rate_many(bandit, DEFAULT, "down", 2)
    choice = bandit.choose("p", "simple", random.Random(0))
    assert choice.mode == "exploit"
    assert choice.arm != DEFAULT  # untried arms stand at the prior mean 0.5, above the default's 1/4
    neighbours = {Arm(0.2, 1.0, 1.0), Arm(0.8, 1.0, 1.0), Arm(0.5, 1.0, 0.5), Arm(0.5, 1.0, 1.5)}
    assert choice.arm in neighbours  # the arms nearest the default are tried first


def test_a_lucky_early_arm_loses_the_choice_as_its_ratings_come_in():
    bandit = Bandit(explore=0.0)
    rate_many(bandit, SHORT_AND_COOL, "up", 1)
    assert bandit.best("p", "simple") == SHORT_AND_COOL
    rate_many(bandit, SHORT_AND_COOL, "down", 2)
    assert bandit.best("p", "simple") != SHORT_AND_COOL


def test_exploration_still_revisits_an_arm_rated_down_early():
    bandit = Bandit(explore=0.2)
    rate_many(bandit, SHORT_AND_COOL, "down", 1)
    rate_many(bandit, DEFAULT, "up", 3)
    rng = random.Random(1)
    choices = [bandit.choose("p", "simple", rng) for _ in range(2000)]
    assert {c.mode for c in choices if c.arm == SHORT_AND_COOL} == {"explore"}
    assert all(c.arm == DEFAULT for c in choices if c.mode == "exploit")
    revisited = [c for c in choices if c.arm == SHORT_AND_COOL]
    assert revisited and "Thompson sample" in revisited[0].reason and "draw" in revisited[0].detail


def test_min_ratings_keeps_untried_settings_out_of_exploitation():
    bandit = Bandit(explore=0.0, min_ratings=1)
    rate_many(bandit, DEFAULT, "down", 5)
    assert bandit.choose("p", "simple", random.Random(0)).arm == DEFAULT


def test_buckets_and_profiles_learn_independently():
    bandit = Bandit(explore=0.0)
    rate_many(bandit, SHORT_AND_COOL, "up", 5, profile="p", bucket="simple")
    rng = random.Random(0)
    assert bandit.choose("p", "simple", rng).arm == SHORT_AND_COOL
    assert bandit.choose("p", "complex", rng).arm == DEFAULT
    assert bandit.choose("q", "simple", rng).arm == DEFAULT


def test_explore_zero_never_explores():
    bandit = Bandit(explore=0.0)
    rate_many(bandit, SHORT_AND_COOL, "up", 2)
    rng = random.Random(7)
    modes = {bandit.choose("p", bucket, rng).mode for bucket in ("simple", "complex") for _ in range(500)}
    assert modes == {"exploit", "default"}


@pytest.mark.parametrize("explore", [0.05, 0.2, 0.5])
def test_the_explore_fraction_is_respected(explore):
    bandit = Bandit(explore=explore)
    rate_many(bandit, SHORT_AND_COOL, "up", 10)
    rng = random.Random(42)
    explored = sum(bandit.choose("p", "simple", rng).mode == "explore" for _ in range(2000))
    assert explored / 2000 == pytest.approx(explore, abs=0.03)


def test_choices_are_deterministic_for_a_seed():
    bandit = Bandit(explore=0.5)
    rate_many(bandit, SHORT_AND_COOL, "up", 3)
    first = [bandit.choose("p", "simple", random.Random(3)).arm for _ in range(5)]
    rng_a, rng_b = random.Random(11), random.Random(11)
    assert [bandit.choose("p", "simple", rng_a) for _ in range(50)] == [
        bandit.choose("p", "simple", rng_b) for _ in range(50)
    ]
    assert len(set(first)) == 1


@pytest.mark.parametrize(("old", "new"), [("up", "down"), ("down", "up"), (2, 5), ("up", 3)])
def test_changing_a_rating_equals_rating_once(old, new):
    changed, once = Bandit(), Bandit()
    rate_many(changed, DEFAULT, "up", 2)
    rate_many(once, DEFAULT, "up", 2)
    changed.rate("p", "simple", SHORT_AND_COOL.id, old)
    changed.rate("p", "simple", SHORT_AND_COOL.id, new, previous=old)
    once.rate("p", "simple", SHORT_AND_COOL.id, new)
    assert changed.table() == once.table()


def test_replacing_a_rating_that_was_never_given_is_an_error():
    with pytest.raises(ValueError, match="to replace"):
        Bandit().rate("p", "simple", DEFAULT.id, "up", previous="down")


def test_load_equals_sequential_updates_and_skips_arms_outside_the_grid():
    rows = [("p", "simple", SHORT_AND_COOL.id, 1.0), ("p", "simple", DEFAULT.id, 0.0),
            ("q", "complex", DEFAULT.id, 0.75), ("p", "simple", SHORT_AND_COOL.id, 0.5)]  # fmt: skip
    sequential = Bandit()
    for row in rows:
        sequential.update(*row)
    loaded = Bandit()
    loaded.update("stale", "simple", DEFAULT.id, 1.0)  # load replaces what was learned before
    assert loaded.load([*rows, ("p", "simple", "t0.9-p1.0-m1.0", 1.0)]) == 1
    assert loaded.table() == sequential.table()
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert [loaded.choose("p", "simple", rng_a) for _ in range(20)] == [
        sequential.choose("p", "simple", rng_b) for _ in range(20)
    ]


def test_reset_forgets_everything():
    bandit = Bandit(explore=0.0)
    rate_many(bandit, SHORT_AND_COOL, "up", 5)
    bandit.reset()
    assert bandit.table() == []
    assert bandit.choose("p", "simple", random.Random(0)).mode == "default"


def test_table_reports_counts_means_and_the_exploit_choice():
    bandit = Bandit(prior=(1.0, 1.0))
    rate_many(bandit, SHORT_AND_COOL, "up", 3)
    bandit.rate("p", "simple", SHORT_AND_COOL.id, "down")
    bandit.rate("p", "simple", DEFAULT.id, 2)
    rows = {row["arm"]: row for row in bandit.table()}
    assert rows[SHORT_AND_COOL.id] == {
        "profile": "p", "bucket": "simple", "arm": SHORT_AND_COOL.id, "ratings": 4, "mean_reward": 0.75,
        "posterior_mean": round(4 / 6, 4), "exploit": True,
    }  # fmt: skip
    assert rows[DEFAULT.id]["mean_reward"] == 0.25 and not rows[DEFAULT.id]["exploit"]


@pytest.mark.parametrize(("rating", "value"), [("up", 1.0), ("down", 0.0), (1, 0.0), (3, 0.5), (5, 1.0), ("4", 0.75)])
def test_reward_maps_ratings_into_zero_one(rating, value):
    assert reward(rating) == value


@pytest.mark.parametrize("rating", [0, 6, "meh", "", True, 2.5, None])
def test_reward_rejects_anything_else(rating):
    with pytest.raises(ValueError, match="not a rating"):
        reward(rating)


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_update_rejects_rewards_outside_zero_one(value):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Bandit().update("p", "simple", DEFAULT.id, value)


def test_update_rejects_an_arm_outside_the_grid():
    with pytest.raises(ValueError, match="not in the grid"):
        Bandit().update("p", "simple", "t0.9-p1.0-m1.0", 1.0)


def test_arm_ids_round_trip():
    assert Arm(0.2, 0.9, 0.5).id == "t0.2-p0.9-m0.5"
    assert all(Arm.parse(arm.id) == arm for arm in FULL_GRID)
    with pytest.raises(ValueError, match="not an arm id"):
        Arm.parse("hot")


def test_default_arm_is_the_grid_arm_nearest_the_static_parameters():
    assert Bandit().default_arm == DEFAULT
    assert Bandit(default_arm=Arm(0.3, 1.0, 1.0)).default_arm == Arm(0.2, 1.0, 1.0)
    assert nearest_arm(FULL_GRID, Arm(0.75, 0.93, 1.4)) == Arm(0.8, 0.9, 1.5)
    assert nearest_arm(DEFAULT_GRID, Arm(0.75, 0.9, 1.4)) == Arm(0.8, 1.0, 1.5)


def test_apply_scales_the_bucket_budget():
    assert apply(Arm(0.2, 0.9, 0.5), 384) == (0.2, 0.9, 192)
    assert apply(Arm(0.8, 1.0, 1.5), 768) == (0.8, 1.0, 1152)


def test_the_full_grid_learns_top_p_too():
    bandit = Bandit(FULL_GRID, explore=0.0)
    rate_many(bandit, Arm(0.8, 0.9, 1.5), "up", 3)
    assert len(FULL_GRID) == 18 and bandit.best("p", "simple") == Arm(0.8, 0.9, 1.5)


@pytest.mark.parametrize(
    "kwargs", [{"explore": 1.5}, {"explore": -0.1}, {"prior": (0.0, 1.0)}, {"grid": []}, {"grid": DEFAULT_GRID * 2}]
)
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Bandit(**kwargs)
