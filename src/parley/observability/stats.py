"""The dashboard's and `parley stats`' figures: time series and totals over a window, from the completion log
and the feedback store (every replica writes there, so the figures cover them all), plus this replica's live
gauges from its metrics registry. Nothing here keeps counts of its own."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from parley.pipeline.verdicts import actions_in

BASE = "base"  # the adapter column of a turn served without one


@dataclass
class Bucket:
    requests: int = 0
    failed: int = 0
    cancelled: int = 0
    tokens: int = 0
    good: int = 0
    bad: int = 0
    latency: list[float] = field(default_factory=list)  # finished turns only
    ttft: list[float] = field(default_factory=list)
    blocks: Counter[str] = field(default_factory=Counter)  # turns blocked, by scanner
    adapters: Counter[str] = field(default_factory=Counter)  # turns, by adapter

    def add_turn(self, turn: dict[str, Any]) -> None:
        self.requests += 1
        self.failed += turn["outcome"] == "failed"
        self.cancelled += turn["outcome"] == "cancelled"
        self.tokens += turn["completion_tokens"] or 0
        if turn["outcome"] == "finished":
            if turn["latency_ms"] is not None:
                self.latency.append(turn["latency_ms"])
            if turn["ttft_ms"] is not None:
                self.ttft.append(turn["ttft_ms"])
        self.blocks.update(blocked_by(turn["guard"] or {}))
        self.adapters[turn["adapter"] or BASE] += 1

    def merge(self, other: Bucket) -> None:
        for name in ("requests", "failed", "cancelled", "tokens", "good", "bad"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency += other.latency
        self.ttft += other.ttft
        self.blocks.update(other.blocks)
        self.adapters.update(other.adapters)


def blocked_by(guard: dict[str, Any]) -> set[str]:
    """The scanners that blocked a turn (an off-topic refusal is `off_topic`)."""
    return {scanner for _, scanner, action in actions_in(guard) if action == "block"}


def percentile(values: list[float], q: float) -> float | None:
    return None if not values else round(float(np.percentile(values, q)), 1)


def ratio(good: int, bad: int) -> float | None:
    return None if good + bad == 0 else round(good / (good + bad), 3)


def aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def summarize(
    turns: list[dict[str, Any]], ratings: list[tuple[datetime, str]], since: datetime, until: datetime, buckets: int
) -> dict[str, Any]:
    """Series (one point per bucket, `t` its start) and totals of the turns and ratings in [since, until)."""
    step = (until - since) / buckets
    cells = [Bucket() for _ in range(buckets)]

    def cell(when: datetime) -> Bucket | None:
        i = math.floor((aware(when) - since) / step)
        return cells[i] if 0 <= i < buckets else None

    for turn in turns:
        if (b := cell(turn["created_at"])) is not None:
            b.add_turn(turn)
    for when, label in ratings:
        if (b := cell(when)) is not None:
            b.good += label == "good"
            b.bad += label == "bad"
    total = Bucket()
    for b in cells:
        total.merge(b)
    step_s = step.total_seconds()
    scanners = sorted(total.blocks)
    adapters = sorted(total.adapters, key=lambda a: (a != BASE, a))
    series = {
        "t": [(since + i * step).isoformat() for i in range(buckets)],
        "requests": [b.requests for b in cells],
        "failed": [b.failed for b in cells],
        "latency_p50_ms": [percentile(b.latency, 50) for b in cells],
        "latency_p95_ms": [percentile(b.latency, 95) for b in cells],
        "ttft_p50_ms": [percentile(b.ttft, 50) for b in cells],
        "ttft_p95_ms": [percentile(b.ttft, 95) for b in cells],
        "tokens_per_s": [round(b.tokens / step_s, 2) for b in cells],
        "feedback_good": [b.good for b in cells],
        "feedback_bad": [b.bad for b in cells],
        "feedback_ratio": [ratio(b.good, b.bad) for b in cells],
        "guard_blocks": {s: [b.blocks[s] for b in cells] for s in scanners},
        "adapters": {a: [b.adapters[a] for b in cells] for a in adapters},
    }
    totals = {
        "requests": total.requests,
        "failed": total.failed,
        "cancelled": total.cancelled,
        "error_rate": None if not total.requests else round(total.failed / total.requests, 4),
        "latency_p50_ms": percentile(total.latency, 50),
        "latency_p95_ms": percentile(total.latency, 95),
        "ttft_p50_ms": percentile(total.ttft, 50),
        "ttft_p95_ms": percentile(total.ttft, 95),
        "completion_tokens": total.tokens,
        "tokens_per_s": round(total.tokens / (until - since).total_seconds(), 3),
        "feedback_good": total.good,
        "feedback_bad": total.bad,
        "feedback_ratio": ratio(total.good, total.bad),
        "guard_blocks": dict(sorted(total.blocks.items())),
        "adapters": {a: total.adapters[a] for a in adapters},
    }
    return {"since": since.isoformat(), "until": until.isoformat(), "bucket_s": step_s, "series": series,
            "totals": totals}  # fmt: skip


def window(seconds: float, buckets: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[since, until) covering the last `seconds`, its end rounded up to a whole bucket (so that buckets start
    on round times, and a chart that refreshes keeps its points in place)."""
    step = seconds / buckets
    end = (now or datetime.now(UTC)).timestamp()
    until = datetime.fromtimestamp(math.ceil(end / step) * step, UTC)
    return until - timedelta(seconds=seconds), until
