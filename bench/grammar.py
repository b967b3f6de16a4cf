"""Grammar pass: precision and recall on answers with planted errors, false changes on clean answers, speed.

The answers are hand-written (bench/data/grammar_eval.jsonl): `clean` ones must come out unchanged, `errors`
ones must come out as their `expected` text. Each is streamed through `GrammarPass` in small pieces, as a model
would send it. Changes are compared as edits against the input (a token diff), so a change is right when the
expected text makes the same edit at the same place:

- precision: right edits / all edits made on the error set (and over both sets, counting clean-set edits);
- recall: planted edits made / planted edits;
- false changes: edits made on clean answers;
- speed: characters per second through the pass, against a pass-through filter in the same feed loop.

Every figure is given for the held-in part (written while the rules were tuned) and the held-out part
(written after they were frozen).

    python bench/grammar.py [--json] [--repeat 5]
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.pipeline.postprocess import grammar_spelling
from parley.pipeline.postprocess.grammar import GrammarPass

DATA = Path(__file__).resolve().parent / "data" / "grammar_eval.jsonl"
TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
PIECE = re.compile(r"\s*\S{1,4}|\s+")  # roughly what a tokenizer streams: a few characters at a time

Edit = tuple[int, int, tuple[str, ...]]


class PassThrough:
    """The baseline: the same filter protocol, copying text through."""

    name, stop = "copy", False

    def feed(self, text: str, tokens_left: int) -> str:
        return text

    def finish(self, reason: str) -> str:
        return ""


def stream(filt: Any, pieces: list[str]) -> str:
    out = [filt.feed(p, 1000) for p in pieces]
    out.append(filt.finish("stop"))
    return "".join(out)


def edits(before: str, after: str) -> set[Edit]:
    a, b = TOKEN.findall(before), TOKEN.findall(after)
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return {(i1, i2, tuple(b[j1:j2])) for tag, i1, i2, j1, j2 in ops if tag != "equal"}


@dataclass
class Tally:
    answers: int = 0
    made: int = 0
    right: int = 0
    planted: int = 0
    clean_answers: int = 0
    clean_changed: int = 0
    false_changes: int = 0
    wrong: list[dict[str, str]] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        all_made = self.made + self.false_changes
        return {
            "error_answers": self.answers,
            "planted": self.planted,
            "changes_made": self.made,
            "right_changes": self.right,
            "precision": round(self.right / self.made, 4) if self.made else None,
            "precision_with_clean": round(self.right / all_made, 4) if all_made else None,
            "recall": round(self.right / self.planted, 4) if self.planted else None,
            "clean_answers": self.clean_answers,
            "clean_answers_changed": self.clean_changed,
            "false_changes_on_clean": self.false_changes,
        }


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Tally]:
    tallies = {"held_in": Tally(), "held_out": Tally(), "all": Tally()}
    for row in rows:
        out = stream(GrammarPass(), PIECE.findall(row["text"]))
        made = edits(row["text"], out)
        for tally in (tallies[row["part"]], tallies["all"]):
            if row["set"] == "clean":
                tally.clean_answers += 1
                tally.clean_changed += bool(made)
                tally.false_changes += len(made)
                if made and tally is tallies["all"]:
                    tally.wrong.append({"id": row["id"], "output": _context(row["text"], out)})
                continue
            wanted = edits(row["text"], row["expected"])
            tally.answers += 1
            tally.made += len(made)
            tally.right += len(made & wanted)
            tally.planted += len(wanted)
            if made != wanted and tally is tallies["all"]:
                tally.wrong.append({"id": row["id"], "output": _context(row["expected"], out)})
    return tallies


def _context(expected: str, out: str) -> str:
    """The first place where the output differs from what was expected, with a little context."""
    at = next((i for i, (x, y) in enumerate(zip(expected, out, strict=False)) if x != y), min(len(expected), len(out)))
    return f"expected …{expected[max(0, at - 30) : at + 30]!r}… got …{out[max(0, at - 30) : at + 30]!r}…"


def speed(rows: list[dict[str, Any]], repeat: int) -> dict[str, float]:
    """Characters per second through the pass and through the pass-through baseline (best of `repeat` runs), on
    all the answers and on those that are prose only (no code block, not JSON)."""
    prose = [row for row in rows if "```" not in row["text"] and row["text"][:1] not in "{["]
    result: dict[str, float] = {}
    for sample, label in ((rows, ""), (prose, "prose_")):
        streams = [PIECE.findall(row["text"]) for row in sample]
        chars = sum(len(row["text"]) for row in sample)
        best = {
            name: _best_time(make, streams, repeat)
            for name, make in (("baseline", PassThrough), ("grammar", GrammarPass))
        }
        result[f"{label}chars"] = chars
        result[f"{label}baseline_chars_per_s"] = round(chars / best["baseline"])
        result[f"{label}grammar_chars_per_s"] = round(chars / best["grammar"])
        result[f"{label}slowdown_vs_baseline"] = round(best["grammar"] / best["baseline"], 1)
        result[f"{label}grammar_ms_per_1000_chars"] = round(1000 * best["grammar"] / chars * 1000, 3)
    return result


def _best_time(make: Any, streams: list[list[str]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for pieces in streams:
            stream(make(), pieces)
        times.append(time.perf_counter() - started)
    return min(times)


def table(result: dict[str, Any]) -> str:
    parts = ("held_in", "held_out", "all")
    rows = [
        ("answers with planted errors", "error_answers"), ("planted edits", "planted"),
        ("edits made", "changes_made"), ("right edits", "right_changes"), ("precision", "precision"),
        ("precision, clean-set edits counted", "precision_with_clean"), ("recall", "recall"),
        ("clean answers", "clean_answers"), ("clean answers changed", "clean_answers_changed"),
        ("false changes on clean answers", "false_changes_on_clean"),
    ]  # fmt: skip
    lines = ["| | held-in | held-out | all |", "|---|---:|---:|---:|"]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(str(result[p][key]) for p in parts) + " |")
    s = result["speed"]
    lines += [
        "",
        "| speed | |", "|---|---:|",
        f"| pass-through baseline, chars/s | {s['baseline_chars_per_s']:,} |",
        f"| grammar pass, chars/s | {s['grammar_chars_per_s']:,} |",
        f"| slowdown against the baseline | {s['slowdown_vs_baseline']}× |",
        f"| grammar pass, ms per 1,000 chars | {s['grammar_ms_per_1000_chars']} |",
        f"| prose-only answers: grammar pass, chars/s | {s['prose_grammar_chars_per_s']:,} |",
        f"| prose-only answers: slowdown against the baseline | {s['prose_slowdown_vs_baseline']}× |",
        f"| prose-only answers: ms per 1,000 chars | {s['prose_grammar_ms_per_1000_chars']} |",
        f"| dictionary load (once per process), s | {result['dictionary_load_s']:.2f} |",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (the best is kept)")
    parser.add_argument("--show", action="store_true", help="list the answers the pass got wrong")
    args = parser.parse_args()

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    load_s = grammar_spelling.preload()
    tallies = evaluate(rows)
    result: dict[str, Any] = {p: t.figures() for p, t in tallies.items()}
    result["speed"] = speed(rows, args.repeat)
    result["dictionary_load_s"] = round(load_s, 3)
    if args.json:
        result["wrong"] = tallies["all"].wrong
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(table(result))
    if args.show:
        for item in tallies["all"].wrong:
            print(f"- {item['id']}: {item['output']}")


if __name__ == "__main__":
    main()
