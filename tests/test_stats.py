"""The dashboard's arithmetic on hand-made log rows: buckets, percentiles, blocks by scanner, adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley.cli_stats import parse_window, sparkline
from parley.observability.stats import blocked_by, summarize, window

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def turn(minute: float, *, latency=100.0, ttft=10.0, tokens=5, outcome="finished", adapter=None, guard=None) -> dict:
    return {"created_at": T0 + timedelta(minutes=minute), "model": "m", "adapter": adapter, "outcome": outcome,
            "finish_reason": "stop", "ttft_ms": ttft, "latency_ms": latency, "prompt_tokens": 3,
            "completion_tokens": tokens, "guard": guard or {}}  # fmt: skip


INJECTION = {"input": [{"message": 0, "action": "block", "findings": [{"scanner": "injection", "action": "block"}]}]}
PII_REDACTED = {"input": [{"message": 0, "action": "redact", "findings": [{"scanner": "pii", "action": "redact"}]}]}
LEAK = {"output": [{"scanner": "leak", "kind": "canary", "action": "block"}], "blocked": "leak:canary"}
OFF_TOPIC = {"off_topic": {"similarity": 0.05, "action": "block"}}


def test_blocks_are_counted_by_the_scanner_that_blocked():
    assert blocked_by(INJECTION) == {"injection"}
    assert blocked_by(PII_REDACTED) == set()  # redacted, not blocked
    assert blocked_by(LEAK) == {"leak"}
    assert blocked_by(OFF_TOPIC) == {"off_topic"}
    old = {"input": [{"message": 0, "action": "block", "findings": [{"scanner": "injection", "kind": "x"}]}]}
    assert blocked_by(old) == {"injection"}  # rows logged before findings carried their own action


def test_series_and_totals_over_buckets():
    turns = [turn(1, latency=100), turn(2, latency=300), turn(2.5, latency=200, adapter="faq"),
             turn(11, outcome="failed", latency=None, ttft=None, tokens=0, guard=INJECTION),
             turn(12, guard=LEAK, adapter="faq"), turn(25), turn(-1), turn(31)]  # fmt: skip  # last two: outside
    ratings = [(T0 + timedelta(minutes=3), "good"), (T0 + timedelta(minutes=4), "bad"),
               (T0 + timedelta(minutes=13), "bad"), (T0 + timedelta(minutes=40), "good")]  # fmt: skip
    out = summarize(turns, ratings, T0, T0 + timedelta(minutes=30), 3)
    s, t = out["series"], out["totals"]
    assert out["bucket_s"] == 600 and len(s["t"]) == 3 and s["t"][1] == (T0 + timedelta(minutes=10)).isoformat()
    assert s["requests"] == [3, 2, 1] and s["failed"] == [0, 1, 0]
    assert s["latency_p50_ms"] == [200.0, 100.0, 100.0] and s["latency_p95_ms"][0] == 290.0
    assert s["tokens_per_s"] == [round(15 / 600, 2), round(5 / 600, 2), round(5 / 600, 2)]
    assert s["feedback_good"] == [1, 0, 0] and s["feedback_bad"] == [1, 1, 0]
    assert s["feedback_ratio"] == [0.5, 0.0, None]
    assert s["guard_blocks"] == {"injection": [0, 1, 0], "leak": [0, 1, 0]}
    assert s["adapters"] == {"base": [2, 1, 1], "faq": [1, 1, 0]}
    assert t["requests"] == 6 and t["failed"] == 1 and t["error_rate"] == round(1 / 6, 4)
    assert t["completion_tokens"] == 25 and t["feedback_ratio"] == round(1 / 3, 3)
    assert t["latency_p50_ms"] == 100.0 and t["guard_blocks"] == {"injection": 1, "leak": 1}


def test_an_empty_window_has_no_percentiles():
    out = summarize([], [], T0, T0 + timedelta(hours=1), 4)
    assert out["totals"]["latency_p95_ms"] is None and out["series"]["ttft_p50_ms"] == [None] * 4


def test_windows_end_on_a_whole_bucket():
    since, until = window(3600, 60, now=datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    assert until == datetime(2026, 1, 1, 12, 1, tzinfo=UTC) and until - since == timedelta(hours=1)


def test_cli_window_and_sparkline():
    assert parse_window("15m") == 900 and parse_window("7d") == 7 * 86400 and parse_window("90") == 90
    assert sparkline([0, None, 4, 8]) == "▁·▅█"
