"""Guard evaluation on the project's labelled corpus (src/parley/guards/data/injection_corpus.jsonl).

Per category: detection rate (attacks) or false-positive rate (benign), on the held-out `eval` families (the
classifier never saw them) and on the whole corpus; and the latency of the whole input guard (injection
rules + classifier, PII, secrets) per request, p50/p95, one request at a time.

    python bench/guards.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, pct

from parley.guards.corpus import load
from parley.guards.deobfuscate import variants
from parley.guards.injection import chunks
from parley.guards.input_guard import InputGuard


def main() -> None:
    guard = InputGuard.default()
    rows = load()
    guard.scan_text("warm up the embedder")
    stats: dict[tuple[str, str], list[int]] = defaultdict(list)
    latencies, benign_latencies, by_rule = [], [], defaultdict(int)
    clf = guard.scanners[0].classifier
    clf_hits: dict[int, list[int]] = defaultdict(list)  # classifier alone, held-out families
    for row in rows:
        start = time.perf_counter()
        findings = guard.scan_text(str(row["text"]))
        latencies.append((time.perf_counter() - start) * 1000)
        if row["label"] == 0:
            benign_latencies.append(latencies[-1])
        if row["split"] == "eval":
            readings = [p for r in variants(str(row["text"])) for p in chunks(r)]
            clf_hits[int(row["label"])].append(int(clf.probabilities(readings).max() >= clf.threshold))
        hit = any(f.scanner == "injection" for f in findings)
        for f in findings:
            if f.scanner == "injection":
                by_rule[f.detail.split(":")[0]] += 1
        for split in (str(row["split"]), "all"):
            stats[(split, str(row["category"]))].append(int(hit))
    report = {"latency_ms": {"p50": pct(latencies, 50), "p95": pct(latencies, 95), "mean": statistics.mean(latencies),
                             "benign_p50": pct(benign_latencies, 50), "benign_p95": pct(benign_latencies, 95)},
              "decided_by": dict(by_rule), "categories": {},
              "classifier_alone_eval": {"detection": sum(clf_hits[1]) / len(clf_hits[1]),
                                        "false_positives": sum(clf_hits[0]) / len(clf_hits[0])}}  # fmt: skip
    lines = ["| split | category | prompts | detection | false positives |", "|---|---|---|---|---|"]
    for split in ("eval", "all"):
        attacks, benign = [], []
        for (s, category), hits in sorted(stats.items()):
            if s != split:
                continue
            rate = sum(hits) / len(hits)
            is_attack = not category.startswith("benign")
            (attacks if is_attack else benign).extend(hits)
            report["categories"][f"{split}/{category}"] = {"n": len(hits), "rate": rate}
            det, fp = (f"{rate:.1%}", "") if is_attack else ("", f"{rate:.1%}")
            lines.append(f"| {split} | {category} | {len(hits)} | {det} | {fp} |")
        lines.append(f"| {split} | **all attacks / all benign** | {len(attacks)} / {len(benign)} | "
                     f"**{sum(attacks) / len(attacks):.1%}** | **{sum(benign) / len(benign):.1%}** |")  # fmt: skip
        report[f"{split}_detection"] = sum(attacks) / len(attacks)
        report[f"{split}_false_positives"] = sum(benign) / len(benign)
    lat = report["latency_ms"]
    ca = report["classifier_alone_eval"]
    lines.append(f"\nInput guard latency per request: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms "
                 f"(mean {lat['mean']:.1f} ms); benign prompts only (they go through the classifier): "
                 f"p50 {lat['benign_p50']:.1f} ms, p95 {lat['benign_p95']:.1f} ms.\n"
                 f"Decided by: {dict(by_rule)}. Classifier alone on held-out families: detection "
                 f"{ca['detection']:.1%}, false positives {ca['false_positives']:.1%}.")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "guards.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "guards.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
