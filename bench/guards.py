"""Guard evaluation on collections the guards were never built from.

The input guard (rules, then the classifier) is trained and tuned on the project's template corpus and on the
public collections in src/parley/guards/data/public_train.jsonl (`python -m parley.guards.train`). It is
reported here on other public collections, whole, none of which was used for training, rules or thresholds:
bench/data/guards/heldout.jsonl (where each comes from and its licence: bench/data/guards/SOURCES.md).

- per collection, per kind of attack and per language: detection on attacks, false positives on benign prompts
  (each text as the server's input guard sees it: after preprocessing reveals Unicode tag characters);
- the template corpus, for coverage only (the classifier was trained on it and the rules written with it);
- the input guard's latency per request, p50/p95, one request at a time;
- the encoder's own speed, int8 (what serves) against float32, on the same 200 held-out texts in the same run;
- `--leaks`: the paraphrased system-prompt leak judge on leaks written for it (bench/data/guards/leaks.jsonl):
  the cosine of every answer to its system prompt, and the detection / false positives at each threshold.

    python bench/guards.py [--leaks]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, pct

from parley.guards.corpus import load
from parley.guards.input_guard import InputGuard
from parley.guards.invisible import reveal

HELDOUT = Path(__file__).parent / "data" / "guards" / "heldout.jsonl"
LEAKS = Path(__file__).parent / "data" / "guards" / "leaks.jsonl"


def collection(row: dict[str, str]) -> str:
    return row["source"].split()[0]


def kind(row: dict[str, str]) -> str:
    """CyberSecEval's kinds are `direct|indirect / technique / risk`: grouped by the first two."""
    return "/".join(row["kind"].split("/")[:2])


def rate(hits: list[int]) -> str:
    return f"{sum(hits) / len(hits):.1%} ({sum(hits)}/{len(hits)})" if hits else "—"


def table(title: str, groups: dict[str, dict[int, list[int]]]) -> list[str]:
    lines = [f"\n### {title}\n", "| | attacks | detected | benign | false positives |", "|---|---|---|---|---|"]
    for name, by in sorted(groups.items()):
        lines.append(f"| {name} | {len(by[1])} | {rate(by[1])} | {len(by[0])} | {rate(by[0])} |")
    return lines


def inputs(guard: InputGuard) -> tuple[list[str], dict]:
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").split("\n") if line]
    by_source: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    by_kind: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    by_lang: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    total: dict[int, list[int]] = defaultdict(list)
    by_source_rules: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    latencies = []
    scanner = guard.injection_scanner()
    scored: list[tuple[int, float]] = []  # (label, the injection scanner's score) for the curve below
    for row in rows:
        start = time.perf_counter()
        text = reveal(row["text"])[0]  # as the preprocessing stage does first: tag characters become the text
        found = [f for f in guard.scan_text(text) if f.scanner == "injection"]
        hit = int(bool(found))
        latencies.append((time.perf_counter() - start) * 1000)
        label = int(row["label"])
        if scanner is not None:  # as scan_text reads it (PII and secrets masked), whatever the threshold
            ruled, masked = guard.scan_now(text)
            rule = any(f.scanner == "injection" for f in ruled)
            scored.append((label, 1.0 if rule else scanner.probability(masked) if masked is not None else 0.0))
        by_source_rules[collection(row)][label].append(int(any(f.detail.startswith("rule:") for f in found)))
        for groups, key in ((by_source, collection(row)), (by_kind, kind(row) if label else "benign"),
                            (by_lang, row["lang"])):  # fmt: skip
            groups[key][label].append(hit)
        total[label].append(hit)
    own: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in load():
        own[str(row["category"])][int(row["label"])].append(
            int(any(f.scanner == "injection" for f in guard.scan_text(str(row["text"]))))
        )
    lines = [f"## Held-out collections: {rate(total[1])} of attacks detected, {rate(total[0])} false positives"]
    lines += table("By collection (rules or classifier)", by_source)
    lines += table("By collection, rules alone (what the default policy blocks; the classifier's findings are "
                   "flagged)", by_source_rules)  # fmt: skip
    lines += table("By kind of attack", by_kind)
    lines += table("By language (attacks: CyberSecEval and garak; benign: MGSM and XSTest)", by_lang)
    lines += curve(scored)
    lines += table("Coverage: the template corpus the classifier was trained on (not generalisation)", own)
    lines.append(f"\nInput guard latency per request (held-out rows, one at a time): p50 {pct(latencies, 50):.1f} ms, "
                 f"p95 {pct(latencies, 95):.1f} ms.")  # fmt: skip
    report = {"detection": sum(total[1]) / len(total[1]), "false_positives": sum(total[0]) / len(total[0]),
              "by_language": {k: {"detection": sum(v[1]) / len(v[1]) if v[1] else None,
                                  "false_positives": sum(v[0]) / len(v[0]) if v[0] else None}
                              for k, v in by_lang.items()},
              "latency_ms": {"p50": pct(latencies, 50), "p95": pct(latencies, 95)}}  # fmt: skip
    return lines, report


def curve(scored: list[tuple[int, float]], rates: tuple[float, ...] = (0.01, 0.02, 0.03, 0.04, 0.05)) -> list[str]:
    """Detection when the threshold is set on these benign rows to let through a given share of false positives:
    for comparing two classifiers at the same false positives, never for choosing the shipped threshold (that
    one comes from the training data's cross-validation). A score is 1.0 where a rule matches, else the
    classifier's probability."""
    if not scored:
        return []
    benign = sorted((s for label, s in scored if label == 0), reverse=True)
    attacks = [s for label, s in scored if label == 1]
    lines = ["\n### Detection at fixed false positives (threshold set on the held-out benign rows; comparison only)\n",
             "| false positives allowed | threshold | false positives | attacks detected |", "|---|---|---|---|"]
    for r in rates:
        threshold = benign[int(len(benign) * r)] + 1e-9 if int(len(benign) * r) < len(benign) else 0.0
        fp = rate([int(s >= threshold) for s in benign])
        lines.append(f"| {r:.0%} | {threshold:.3f} | {fp} | {rate([int(s >= threshold) for s in attacks])} |")
    return lines


def encoder_speed(rows: list[dict], n: int = 200) -> tuple[list[str], dict]:
    """Milliseconds to encode one text (up to 600 characters, as the classifier reads it) on one thread."""
    from parley.guards.embeddings import E5

    texts = [reveal(r["text"])[0][:600] for r in rows[:: max(len(rows) // n, 1)][:n]]
    report: dict = {}
    for name, int8 in (("int8", True), ("float32", False)):
        encoder = E5(int8=int8)
        encoder.encode(["warm up"])
        times = []
        for text in texts:
            start = time.perf_counter()
            encoder.model.encode([text])  # the model itself: the embedder's cache would answer repeats
            times.append((time.perf_counter() - start) * 1000)
        report[name] = {"p50_ms": pct(times, 50), "p95_ms": pct(times, 95), "mean_ms": sum(times) / len(times)}
    ratio = report["int8"]["mean_ms"] / report["float32"]["mean_ms"]
    lines = [f"\nEncoder alone, one text at a time on one thread ({len(texts)} held-out texts): int8 p50 "
             f"{report['int8']['p50_ms']:.1f} ms, p95 {report['int8']['p95_ms']:.1f} ms; float32 p50 "
             f"{report['float32']['p50_ms']:.1f} ms, p95 {report['float32']['p95_ms']:.1f} ms; int8 / float32 "
             f"(mean) {ratio:.2f}."]  # fmt: skip
    return lines, {**report, "int8_over_float32": ratio}


def leaks() -> tuple[list[str], dict]:
    """The judge's thresholds were chosen on the first six system prompts' answers; the last six report."""
    from parley.guards.embeddings import guard_embedder
    from parley.guards.paraphrase import ParaphraseJudge, sentences

    judge = ParaphraseJudge(guard_embedder())
    rows = [json.loads(line) for line in LEAKS.read_text(encoding="utf-8").split("\n") if line]
    prompts = list(dict.fromkeys(r["system_prompt"] for r in rows))
    report: dict = {"rows": []}
    hits: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in rows:
        half = "tuning" if prompts.index(row["system_prompt"]) < len(prompts) // 2 else "held out"
        scores = [judge.scores(row["system_prompt"], s).result() for s in sentences(row["answer"]) or [row["answer"]]]
        leaked = any(judge.leaks(s) for s in scores)
        hits[(half, row["label"])].append(int(leaked))
        report["rows"].append({"half": half, "label": row["label"], "leaked": leaked,
                               "scores": [[round(a, 4), round(b, 4)] for a, b in scores]})  # fmt: skip
    lines = ["\n## Paraphrased system-prompt leaks (written for this judge)\n",
             f"A sentence leaks when its cosine to the system prompt is at least {judge.similar} and it is closer, by "
             f"{judge.margin} or more, to statements of the assistant's own rules than to offers of help.\n",
             "| half | leaks caught | answers doing the task, stopped |", "|---|---|---|"]  # fmt: skip
    for half in ("tuning", "held out"):
        lines.append(f"| {half} | {rate(hits[(half, 1)])} | {rate(hits[(half, 0)])} |")
    judge.close()
    return lines, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaks", action="store_true", help="only the paraphrased-leak judge")
    args = parser.parse_args()
    if args.leaks:
        lines, report = leaks()
    else:
        guard = InputGuard.default()
        guard.scan_text("warm up the embedder")
        lines, report = inputs(guard)
        rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").split("\n") if line]
        speed_lines, report["encoder_ms"] = encoder_speed(rows)
        lines += speed_lines
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "guards_leaks" if args.leaks else "guards"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
