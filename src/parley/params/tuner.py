"""The server's side of learnt parameters: one bandit (bandit.py) rebuilt from the ratings in the store, so
every replica learns from every replica's ratings and nothing is kept twice. The arm a turn used and its
bucket are in the turn's logged parameters; a rating of such a turn is a reward for that arm.

It is rebuilt at start, every `refresh_s`, and soon after a rating arrives here."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from parley.params.bandit import Arm, Bandit, apply, reward

log = logging.getLogger(__name__)


class RatingSource(Protocol):
    def profile_ratings(self) -> Iterator[tuple[str, dict[str, Any], str]]: ...


@dataclass(frozen=True)
class Pick:
    arm: Arm
    detail: dict[str, Any]

    @property
    def temperature(self) -> float:
        return self.arm.temperature

    @property
    def top_p(self) -> float:
        return self.arm.top_p

    def max_tokens(self, budget: int) -> int:
        return apply(self.arm, budget)[2]


def reward_rows(rows: Iterable[tuple[str, dict[str, Any], str]]) -> Iterator[tuple[str, str, str, float]]:
    """(profile, bucket, arm, reward) for each rating of a turn whose parameters an arm chose."""
    for profile, params, rating in rows:
        arm, bucket = (params or {}).get("arm"), (params or {}).get("bucket")
        if arm and bucket:
            try:
                yield profile, bucket, arm, reward(rating)
            except ValueError:
                continue


class Tuner:
    def __init__(self, source: RatingSource | None, *, explore: float, refresh_s: float = 30.0,
                 seed: int | None = None) -> None:  # fmt: skip
        self.source = source
        self.bandit = Bandit(explore=explore)
        self.refresh_s = refresh_s
        self.rng = random.Random(seed)
        self.loaded = 0
        self._wake = asyncio.Event()

    def choose(self, profile: str, bucket: str) -> Pick:
        choice = self.bandit.choose(profile, bucket, self.rng)
        return Pick(choice.arm, {**choice.detail, "reason": choice.reason})

    def reload(self) -> int:
        """Rebuild from every stored rating; how many rewards were loaded."""
        if self.source is None:
            return 0
        rows = list(reward_rows(self.source.profile_ratings()))
        self.bandit.load(rows)
        self.loaded = len(rows)
        return self.loaded

    def rated(self) -> None:
        """A rating was stored here: rebuild soon (ratings may replace earlier ones, so a rebuild, not a sum)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.reload)
            except Exception:  # the store is down: keep what was learnt, try again later
                log.exception("could not reload the ratings for adaptive parameters")
            try:
                await asyncio.wait_for(self._wake.wait(), self.refresh_s)
                await asyncio.sleep(0.2)  # let a burst of ratings land first
            except TimeoutError:
                pass
            self._wake.clear()
