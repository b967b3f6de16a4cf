"""Generation parameters that learn from ratings: a Beta–Bernoulli bandit per (profile, complexity bucket).

Arms are points of a small grid of (temperature, top_p, max_tokens scale); the scale multiplies the bucket's
budget from `parley.pipeline.complexity`, so one grid serves every bucket. Each rating becomes a reward in
[0, 1] (up 1, down 0, stars (r-1)/4) that adds r to the arm's alpha and 1-r to its beta, per
(profile, bucket, arm).

Choosing, per request:
- with probability 1 - explore, *exploit*: the arm with the best posterior mean. The mean includes the prior,
  so one lucky "up" does not outrank a long good record, and an arm without ratings stands at the prior mean:
  once the default is rated below that, an untried arm takes over (the nearest to the default first). A lucky
  early arm cannot hold the choice forever either: being exploited, it keeps being rated, and its mean
  regresses to its true rating. `min_ratings` > 0 keeps arms with fewer ratings out (never the default).
- with probability explore, *explore*: a Thompson sample, one Beta draw per arm, the highest wins. An arm
  rated down by bad luck early still gets drawn now and then, so it is not lost for good, yet only this share
  of requests is spent on it: exploration is bounded, and `explore=0` switches it off.
- with no ratings in the bucket yet: the default arm, the grid arm nearest the static parameters (temperature
  0.5, top_p 1.0, the bucket's own budget) unless another is given. Ties go to it too.

The module does no I/O: the server rebuilds a bandit from stored ratings with `load`.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Rating = str | int
Mode = Literal["exploit", "explore", "default"]
ARM_ID = re.compile(r"^t(\d+(?:\.\d+)?)-p(\d+(?:\.\d+)?)-m(\d+(?:\.\d+)?)$")
PARAMETERS = ("temperature", "top_p", "max_tokens_scale")


@dataclass(frozen=True)
class Arm:
    """One parameter setting. `max_tokens_scale` multiplies the bucket's default budget."""

    temperature: float
    top_p: float
    max_tokens_scale: float

    @property
    def id(self) -> str:
        return f"t{float(self.temperature)}-p{float(self.top_p)}-m{float(self.max_tokens_scale)}"

    @classmethod
    def parse(cls, arm_id: str) -> Arm:
        match = ARM_ID.match(arm_id)
        if not match:
            raise ValueError(f"not an arm id: {arm_id!r} (expected e.g. 't0.5-p1.0-m1.0')")
        return cls(*(float(group) for group in match.groups()))


# Temperature in three steps across the complexity estimate's static range (0.2 code and math, 0.3 factual,
# 0.7 general, 0.9 creative) and the budget at half, as is and 1.5× the bucket's: the two levers a reader
# notices, each able to move both ways from the default. top_p stays at 1.0: at these temperatures trimming
# the nucleus to 0.9 changes little that temperature does not, and every value added multiplies the arms a
# bucket must learn: against the scripted rater of bench/params.py, these 9 arms are on the preferred one in
# 89% of requests 201-300, FULL_GRID (top_p 0.9 and 1.0 too, 18 arms) in 75%. Pass FULL_GRID to learn top_p.
DEFAULT_GRID: tuple[Arm, ...] = tuple(Arm(t, 1.0, m) for t in (0.2, 0.5, 0.8) for m in (0.5, 1.0, 1.5))
FULL_GRID: tuple[Arm, ...] = tuple(Arm(t, p, m) for t in (0.2, 0.5, 0.8) for p in (0.9, 1.0) for m in (0.5, 1.0, 1.5))
STATIC = Arm(0.5, 1.0, 1.0)


def reward(rating: Rating) -> float:
    """up → 1.0, down → 0.0, stars 1..5 (int or digit string, as the feedback store keeps them) → (r-1)/4."""
    if rating == "up":
        return 1.0
    if rating == "down":
        return 0.0
    if isinstance(rating, str) and rating.isdigit():
        rating = int(rating)
    if isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5:
        return (rating - 1) / 4
    raise ValueError(f"not a rating: {rating!r} (expected 'up', 'down' or 1..5)")


def distances(grid: Iterable[Arm], target: Arm) -> dict[Arm, float]:
    """Each arm's distance from `target`, every parameter scaled by its range in the grid."""
    arms = list(grid)
    spans = {n: max(getattr(a, n) for a in arms) - min(getattr(a, n) for a in arms) or 1.0 for n in PARAMETERS}
    return {arm: math.hypot(*((getattr(arm, n) - getattr(target, n)) / spans[n] for n in PARAMETERS)) for arm in arms}


def nearest_arm(grid: Iterable[Arm], target: Arm) -> Arm:
    """The grid arm closest to `target`; the earlier in the grid on a tie."""
    away = distances(grid, target)
    return min(away, key=away.__getitem__)


def apply(arm: Arm, bucket_max_tokens: int) -> tuple[float, float, int]:
    """(temperature, top_p, max_tokens) for a request in a bucket whose default budget is `bucket_max_tokens`."""
    return arm.temperature, arm.top_p, max(1, round(bucket_max_tokens * arm.max_tokens_scale))


@dataclass
class ArmStats:
    """The ratings of one arm in one (profile, bucket): how many, and the sum of their rewards."""

    count: int = 0
    total: float = 0.0


@dataclass(frozen=True)
class Choice:
    arm: Arm
    mode: Mode
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


class Bandit:
    """Beta–Bernoulli posteriors per (profile, bucket, arm), chosen by bounded exploration (see the module)."""

    def __init__(
        self, grid: Iterable[Arm] = DEFAULT_GRID, *, explore: float = 0.2, prior: tuple[float, float] = (1.0, 1.0),
        min_ratings: int = 0, default_arm: Arm | None = None,
    ) -> None:  # fmt: skip
        self.grid = tuple(grid)
        if not self.grid or len({arm.id for arm in self.grid}) != len(self.grid):
            raise ValueError("the grid needs at least one arm and no arm twice")
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], not {explore}")
        if min(prior) <= 0:
            raise ValueError(f"the prior's alpha and beta must be positive, not {prior}")
        self.explore, self.prior, self.min_ratings = explore, prior, min_ratings
        self.default_arm = nearest_arm(self.grid, default_arm or STATIC)
        away = distances(self.grid, self.default_arm)
        self._exploit_order = sorted(self.grid, key=away.__getitem__)  # the default first, then its neighbours
        self._arm_ids = {arm.id for arm in self.grid}
        self._stats: dict[tuple[str, str], dict[str, ArmStats]] = {}
        self._lock = threading.Lock()

    # --- learning ---------------------------------------------------------------------------------------------

    def update(self, profile: str, bucket: str, arm_id: str, reward: float, *, previous: float | None = None) -> None:
        """Add one rating's reward in [0, 1]. With `previous`, a rater changed an earlier rating of this arm:
        that reward is replaced and the count stays the same."""
        self._check(arm_id, reward, previous)
        with self._lock:
            stats = self._stats.setdefault((profile, bucket), {}).setdefault(arm_id, ArmStats())
            if previous is not None and stats.count == 0:
                raise ValueError(f"no rating of {arm_id} in {profile}/{bucket} to replace")
            if previous is None:
                stats.count += 1
            stats.total += reward - (previous or 0.0)

    def rate(self, profile: str, bucket: str, arm_id: str, rating: Rating, *, previous: Rating | None = None) -> None:
        """`update` from stored ratings ("up", "down", 1..5)."""
        self.update(profile, bucket, arm_id, reward(rating), previous=None if previous is None else reward(previous))

    def load(self, rows: Iterable[tuple[str, str, str, float]]) -> int:
        """Replace everything learned with (profile, bucket, arm id, reward) rows; returns how many rows were
        skipped because their arm is not in this grid (ratings made before a grid change)."""
        fresh: dict[tuple[str, str], dict[str, ArmStats]] = {}
        skipped = 0
        for profile, bucket, arm_id, value in rows:
            if arm_id not in self._arm_ids:
                skipped += 1
                continue
            self._check(arm_id, value, None)
            stats = fresh.setdefault((profile, bucket), {}).setdefault(arm_id, ArmStats())
            stats.count += 1
            stats.total += value
        with self._lock:
            self._stats = fresh
        return skipped

    def reset(self) -> None:
        with self._lock:
            self._stats = {}

    def _check(self, arm_id: str, reward: float, previous: float | None) -> None:
        if arm_id not in self._arm_ids:
            raise ValueError(f"arm {arm_id!r} is not in the grid")
        for value in (reward, previous):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"a reward is in [0, 1], not {value}")

    # --- choosing ---------------------------------------------------------------------------------------------

    def posterior(self, stats: ArmStats | None) -> tuple[float, float]:
        """(alpha, beta) of an arm's Beta posterior."""
        count, total = (stats.count, stats.total) if stats else (0, 0.0)
        total = min(max(total, 0.0), float(count))  # float error from replaced ratings must not break the Beta
        return self.prior[0] + total, self.prior[1] + count - total

    def mean(self, stats: ArmStats | None) -> float:
        alpha, beta = self.posterior(stats)
        return alpha / (alpha + beta)

    def best(self, profile: str, bucket: str) -> Arm:
        """The exploit choice for `profile` in `bucket` now."""
        return self._exploit(self._snapshot(profile, bucket))

    def choose(self, profile: str, bucket: str, rng: random.Random) -> Choice:
        """The arm for the next request of `profile` in `bucket`, how it was chosen and why."""
        stats = self._snapshot(profile, bucket)
        seen = sum(s.count for s in stats.values())
        draw: float | None = None
        if self.explore > 0 and rng.random() < self.explore:
            mode: Mode = "explore"
            draw, arm = max(((rng.betavariate(*self.posterior(stats.get(a.id))), a) for a in self.grid),
                            key=lambda pair: pair[0])  # fmt: skip
        else:
            mode, arm = ("exploit" if seen else "default"), self._exploit(stats)
        own = stats.get(arm.id)
        detail: dict[str, Any] = {
            "arm": arm.id, "mode": mode, "profile": profile, "bucket": bucket, "bucket_ratings": seen,
            "rated_arms": len(stats), "arm_ratings": own.count if own else 0,
            "posterior_mean": round(self.mean(own), 4), "explore": self.explore,
        }  # fmt: skip
        if draw is not None:
            detail["draw"] = round(draw, 4)
        return Choice(arm, mode, self._explain(detail), detail)

    def _explain(self, d: dict[str, Any]) -> str:
        where, record = f"{d['profile']}/{d['bucket']}", f"{d['arm_ratings']} ratings, mean {d['posterior_mean']:.2f}"
        if d["mode"] == "default":
            return f"no ratings yet for {where}: the default arm {d['arm']}"
        if d["mode"] == "explore":
            return f"Thompson sample (explore {self.explore:.0%}): {d['arm']} drew {d['draw']:.2f} ({record})"
        return (f"exploit: {d['arm']} has the best posterior mean, {d['posterior_mean']:.2f} ({d['arm_ratings']} "
                f"ratings; {d['bucket_ratings']} over {d['rated_arms']} arms in {where})")  # fmt: skip

    def _snapshot(self, profile: str, bucket: str) -> dict[str, ArmStats]:
        with self._lock:
            return {arm_id: ArmStats(s.count, s.total) for arm_id, s in self._stats.get((profile, bucket), {}).items()}

    def _exploit(self, stats: dict[str, ArmStats]) -> Arm:
        """The best posterior mean among eligible arms; ties go to the default, then to the arm nearest it."""
        best, best_mean = self.default_arm, self.mean(stats.get(self.default_arm.id))
        for arm in self._exploit_order:
            arm_stats = stats.get(arm.id)
            if (arm_stats.count if arm_stats else 0) >= self.min_ratings and self.mean(arm_stats) > best_mean:
                best, best_mean = arm, self.mean(arm_stats)
        return best

    # --- reporting --------------------------------------------------------------------------------------------

    def table(self) -> list[dict[str, Any]]:
        """One row per profile, bucket and arm that has ratings or is the exploit choice: `parley params report`."""
        with self._lock:
            keys = sorted(self._stats)
        rows = []
        for profile, bucket in keys:
            stats = self._snapshot(profile, bucket)
            chosen = self._exploit(stats)
            for arm in self.grid:
                own = stats.get(arm.id)
                if own is None and arm != chosen:
                    continue
                count = own.count if own else 0
                rows.append({
                    "profile": profile, "bucket": bucket, "arm": arm.id, "ratings": count,
                    "mean_reward": round(own.total / count, 4) if own and count else None,
                    "posterior_mean": round(self.mean(own), 4), "exploit": arm == chosen,
                })  # fmt: skip
        return rows
