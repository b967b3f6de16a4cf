"""Adaptive parameters against a simulated user: does the bandit find the setting a rater prefers?

A scripted rater has a hidden preferred arm per complexity bucket and rates each answer "up" with probability
0.2 + 0.7 * (1 - d / d_max) ** sharpness, where d is the distance between the arm used and the preferred one
(each parameter scaled by its range in the grid) and d_max the largest distance in the grid: 0.9 at the
preferred arm, 0.2 at the farthest. With the default sharpness 2 (a clear preference), one step of temperature
or budget off rates up about half the time; sharpness 1 is a mild preference (one step off: ~65%). Ratings
are Bernoulli draws: noisy, never an oracle. The preferred arms are drawn per seed (`--preferred random`) or
fixed (`--preferred fixed`: simple → t0.2-p1.0-m0.5, moderate → t0.5-p1.0-m1.0, complex → t0.8-p1.0-m1.5).
Prompts arrive in the buckets at random, 40% simple, 40% moderate, 20% complex. The rater is a simulation:
this measures the learning rule, not whether any setting gives better answers.

For each seed, `--requests` rated requests go to four policies on the same prompts and rater noise: the bandit
on DEFAULT_GRID (9 arms), the same bandit on FULL_GRID (18 arms, top_p too), a baseline that always uses the
default arm, and one that picks an arm at random. Reported: the share of requests that used the preferred arm
in requests 201-300 (the target: >= 80%, averaged over seeds) and in the last 100, the share of "up" ratings,
and after how many requests each bucket's exploit choice settled on the preferred arm for good.

    python bench/params.py [--seeds 50] [--requests 300] [--explore 0.2] [--sharpness 2] [--json] [--sweep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

from parley.params.bandit import DEFAULT_GRID, FULL_GRID, Arm, Bandit, distances

FIXED = {"simple": "t0.2-p1.0-m0.5", "moderate": "t0.5-p1.0-m1.0", "complex": "t0.8-p1.0-m1.5"}
MIX = {"simple": 0.4, "moderate": 0.4, "complex": 0.2}
PROFILE = "default"
POLICIES = {"bandit": DEFAULT_GRID, "bandit_18": FULL_GRID, "default": DEFAULT_GRID, "random": DEFAULT_GRID}


def hidden(seed: int, choice: str, grid: tuple[Arm, ...]) -> dict[str, Arm]:
    """The rater's preferred arm per bucket: drawn from the grid per seed, the fixed set, or given as
    "simple=t0.2-p1.0-m0.5,moderate=...,complex=..."."""
    if choice == "random":
        rng = random.Random(seed + 3)
        return {bucket: rng.choice(grid) for bucket in MIX}
    given = FIXED if choice == "fixed" else dict(pair.split("=", 1) for pair in choice.split(","))
    return {bucket: Arm.parse(given[bucket]) for bucket in MIX}


class Rater:
    def __init__(self, grid: tuple[Arm, ...], preferred: dict[str, Arm], sharpness: float, seed: int) -> None:
        d_max = max(max(distances(grid, arm).values()) for arm in grid) or 1.0
        self.p_up = {b: {a: 0.2 + 0.7 * max(0.0, 1 - d / d_max) ** sharpness for a, d in distances(grid, p).items()}
                     for b, p in preferred.items()}  # fmt: skip
        self.rng = random.Random(seed)

    def rate(self, bucket: str, arm: Arm) -> bool:
        return self.rng.random() < self.p_up[bucket][arm]


@dataclass
class Run:
    """One policy over one seed: which requests used the preferred arm, and when each bucket settled."""

    hits: list[bool] = field(default_factory=list)
    ups: list[bool] = field(default_factory=list)
    settled: dict[str, int | None] = field(default_factory=dict)  # None: not on the preferred arm at the end

    def share(self, start: int, stop: int) -> float:
        window = self.hits[start:stop]
        return sum(window) / len(window)


def simulate(seed: int, args: argparse.Namespace, policy: str) -> Run:
    grid = POLICIES[policy]
    buckets = random.Random(seed).choices(list(MIX), weights=list(MIX.values()), k=args.requests)
    preferred = hidden(seed, args.preferred, grid)
    rater, rng = Rater(grid, preferred, args.sharpness, seed + 1), random.Random(seed + 2)
    bandit = Bandit(grid, explore=args.explore, prior=args.prior)
    learns = policy.startswith("bandit")
    run, last_miss = Run(), dict.fromkeys(MIX, 0)
    for i, bucket in enumerate(buckets, start=1):
        if policy == "random":
            arm = rng.choice(grid)
        else:
            arm = bandit.choose(PROFILE, bucket, rng).arm if learns else bandit.default_arm
        up = rater.rate(bucket, arm)
        run.hits.append(arm == preferred[bucket])
        run.ups.append(up)
        if learns:
            bandit.update(PROFILE, bucket, arm.id, 1.0 if up else 0.0)
        for b in MIX:
            if (bandit.best(PROFILE, b) if learns else bandit.default_arm) != preferred[b]:
                last_miss[b] = i
    if policy != "random":  # random has no exploit choice to settle
        run.settled = {b: None if last_miss[b] == len(buckets) else last_miss[b] for b in MIX}
    return run


def summary(runs: list[Run], requests: int) -> dict[str, Any]:
    window = [r.share(200, 300) for r in runs]
    out: dict[str, Any] = {
        "share_201_300": statistics.mean(window), "worst_seed": min(window), "best_seed": max(window),
        "seeds_at_80": sum(w >= 0.8 for w in window),
        "share_last_100": statistics.mean(r.share(requests - 100, requests) for r in runs),
        "up_rate": statistics.mean(sum(r.ups) / len(r.ups) for r in runs), "settled": None,
    }  # fmt: skip
    if runs[0].settled:
        out["settled"] = {}
        for bucket in MIX:
            at = [r.settled[bucket] for r in runs if r.settled[bucket] is not None]
            out["settled"][bucket] = {"seeds": len(at), "median": statistics.median(at) if at else None,
                                      "max": max(at, default=None)}  # fmt: skip
    return out


def pct(value: float) -> str:
    return f"{value:.0%}"


def count(value: float | None) -> str:
    return "never" if value is None else f"{value:g}"


def markdown(args: argparse.Namespace, runs: dict[str, list[Run]], summ: dict[str, dict[str, Any]]) -> str:
    n = args.requests
    lines = [f"# Adaptive parameters against a simulated rater: {args.seeds} seeds × {n} rated requests",
             f"explore {args.explore}, prior {args.prior}, rater sharpness {args.sharpness}, "
             f"preferred arms {args.preferred}", "",
             "## Per seed: share of requests that used the preferred arm", "",
             "| seed | bandit 201–300 | bandit last 100 | 18-arm bandit 201–300 | default | random "
             "| bandit settled after (simple / moderate / complex) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for seed in range(args.seeds):
        b = runs["bandit"][seed]
        others = " | ".join(pct(runs[p][seed].share(200, 300)) for p in ("bandit_18", "default", "random"))
        settled = " / ".join(count(b.settled[k]) for k in MIX)
        lines.append(f"| {seed} | {pct(b.share(200, 300))} | {pct(b.share(n - 100, n))} | {others} | {settled} |")
    lines += ["", "## Overall (mean over seeds)", "",
              "| policy | preferred arm, 201–300 | worst seed | seeds ≥ 80% | last 100 | up ratings |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for policy, s in summ.items():
        cells = [pct(s["share_201_300"]), pct(s["worst_seed"]), f"{s['seeds_at_80']}/{args.seeds}",
                 pct(s["share_last_100"]), pct(s["up_rate"])]  # fmt: skip
        lines.append(f"| {policy} | {' | '.join(cells)} |")
    lines += ["", "## Requests until the exploit choice settled on the preferred arm for good", "",
              "| policy | bucket | seeds settled | median | max |", "|---|---|---|---|---|"]  # fmt: skip
    for policy in ("bandit", "bandit_18", "default"):
        for bucket, s in summ[policy]["settled"].items():
            cells = f"{s['seeds']}/{args.seeds} | {count(s['median'])} | {count(s['max'])}"
            lines.append(f"| {policy} | {bucket} | {cells} |")
    return "\n".join(lines)


SWEEP_EXPLORE = (0.0, 0.1, 0.2, 0.3)


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The bandit's share of requests 201-300 across exploration rates, grids and raters."""
    rows = []
    for sharpness, policy, explore in itertools.product((2.0, 1.0), ("bandit", "bandit_18"), SWEEP_EXPLORE):
        sub = argparse.Namespace(**{**vars(args), "explore": explore, "sharpness": sharpness})
        s = summary([simulate(seed, sub, policy) for seed in range(args.seeds)], args.requests)
        rows.append({"sharpness": sharpness, "policy": policy, "explore": explore,
                     "share_201_300": s["share_201_300"], "worst_seed": s["worst_seed"]})  # fmt: skip
    return rows


def sweep_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| rater sharpness | policy | " + " | ".join(f"explore {e}" for e in SWEEP_EXPLORE) + " |",
             "|---|---|" + "---|" * len(SWEEP_EXPLORE)]  # fmt: skip
    for i in range(0, len(rows), len(SWEEP_EXPLORE)):
        group = rows[i : i + len(SWEEP_EXPLORE)]
        cells = " | ".join(f"{pct(r['share_201_300'])} (worst {pct(r['worst_seed'])})" for r in group)
        lines.append(f"| {group[0]['sharpness']:g} | {group[0]['policy']} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    defaults = Bandit()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--explore", type=float, default=defaults.explore)
    ap.add_argument("--prior", type=lambda s: tuple(float(x) for x in s.split(",")), default=defaults.prior,
                    help="alpha,beta of the Beta prior")  # fmt: skip
    ap.add_argument("--sharpness", type=float, default=2.0, help="2: a clear preference; 1: a mild one")
    ap.add_argument("--preferred", default="random", help='"random" (per seed), "fixed", or simple=ID,...')
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--sweep", action="store_true", help="also compare exploration rates, grids and raters")
    args = ap.parse_args()
    if args.requests < 300:
        sys.exit("--requests must be at least 300: the target is measured over requests 201-300")
    runs = {policy: [simulate(seed, args, policy) for seed in range(args.seeds)] for policy in POLICIES}
    summ = {policy: summary(r, args.requests) for policy, r in runs.items()}
    swept = sweep(args) if args.sweep else None
    if args.json:
        print(json.dumps({
            "settings": {**vars(args), "mix": MIX}, "summary": summ, "sweep": swept,
            "per_seed_share_201_300": {p: [r.share(200, 300) for r in rs] for p, rs in runs.items()},
        }, indent=2))  # fmt: skip
        return
    print(markdown(args, runs, summ))
    if swept:
        print("\n## Bandit: preferred arm in requests 201–300 by exploration rate (mean over seeds, worst seed)\n")
        print(sweep_markdown(swept))


if __name__ == "__main__":
    main()
