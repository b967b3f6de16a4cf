"""Training data from feedback (and from the user's own files), in TRL's conversational formats.

- SFT `{"messages": [..., {"role": "assistant", ...}]}`: corrections, and answers rated well;
- DPO `{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`: a correction over the answer it
  corrects, and a well-rated answer over a badly rated one to the same prompt;
- KTO `{"prompt": [...], "completion": [assistant], "label": bool}`: answers rated up or down.

Every record that is left out is counted by reason, so an export says what it dropped and why.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.store.feedback import RatedCompletion

FORMATS = ("sft", "dpo", "kto")
Messages = list[dict[str, str]]
Example = dict[str, Any]

# Guard verdicts that make a turn unfit to learn from: a prompt let through with a flag (an injection a key's
# policy allowed), an answer the output guard blocked or found offensive or leaking. Redactions are fine: the
# text already holds placeholders.
UNFIT_INPUT_ACTIONS = ("flag", "block")
UNFIT_OUTPUT_SCANNERS = ("leak", "offensive")


@dataclass
class ExportReport:
    written: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = [f"{self.written} examples written ({', '.join(f'{n} from {s}' for s, n in self.by_source.items())})"]
        out += [f"  dropped {n}: {why}" for why, n in sorted(self.dropped.items())]
        return out


def _assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def _unfit(completion: dict[str, Any]) -> str | None:
    if completion["kind"] != "chat" or not completion.get("messages"):
        return "not a chat turn"
    if completion["outcome"] != "finished":
        return f"turn {completion['outcome']}"
    guard = completion.get("guard") or {}
    if any(v.get("action") in UNFIT_INPUT_ACTIONS for v in guard.get("input") or []):
        return "flagged by the input guard"
    if guard.get("blocked") or any(f.get("scanner") in UNFIT_OUTPUT_SCANNERS for f in guard.get("output") or []):
        return "flagged by the output guard"
    return None


def _latest(ratings: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    with_key = [r for r in ratings if r.get(key)]
    return max(with_key, key=lambda r: r["updated_at"]) if with_key else None


def _verdict(ratings: list[dict[str, Any]]) -> str:
    """good or bad when the raters agree, else mixed (neutral ratings do not count)."""
    labels = {r["label"] for r in ratings} - {"neutral"}
    return labels.pop() if len(labels) == 1 else ("mixed" if labels else "neutral")


def from_feedback(rated: Iterable[RatedCompletion], fmt: str, report: ExportReport) -> Iterator[Example]:
    """Examples of one format from rated completions; what cannot be used is counted in `report.dropped`."""
    by_prompt: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
    for completion, ratings in rated:
        if (why := _unfit(completion)) is not None:
            report.dropped[why] += 1
            continue
        prompt: Messages = completion["messages"]
        answer: str = completion["answer"]
        correction = _latest(ratings, "correction")
        verdict = _verdict(ratings)
        if fmt == "sft":
            if correction is not None:
                yield {"messages": prompt + _assistant(correction["correction"]), "_source": "correction"}
            elif verdict == "good":
                yield {"messages": prompt + _assistant(answer), "_source": "rating"}
            else:
                report.dropped[f"{verdict} rating, no correction"] += 1
        elif fmt == "dpo":
            if correction is not None and correction["correction"].strip() != answer.strip():
                yield {"prompt": prompt, "chosen": _assistant(correction["correction"]), "rejected": _assistant(answer),
                       "_source": "correction"}  # fmt: skip
            if verdict in ("good", "bad"):
                by_prompt[json.dumps(prompt, sort_keys=True)].append((completion, verdict))
            elif correction is None:
                report.dropped[f"{verdict} rating, no correction"] += 1
        else:
            if verdict in ("good", "bad"):
                yield {"prompt": prompt, "completion": _assistant(answer), "label": verdict == "good",
                       "_source": "rating"}  # fmt: skip
            else:
                report.dropped[f"{verdict} rating"] += 1
    if fmt == "dpo":
        yield from _pairs_by_prompt(by_prompt, report)


def _pairs_by_prompt(by_prompt: dict[str, list[tuple[dict[str, Any], str]]], report: ExportReport) -> Iterator[Example]:
    """A well-rated answer over a badly rated one to the same prompt."""
    for group in by_prompt.values():
        good = [c["answer"] for c, v in group if v == "good"]
        bad = [c["answer"] for c, v in group if v == "bad"]
        if not good or not bad:
            continue
        for chosen in good:
            for rejected in bad:
                if chosen.strip() != rejected.strip():
                    yield {"prompt": group[0][0]["messages"], "chosen": _assistant(chosen),
                           "rejected": _assistant(rejected), "_source": "same prompt rated differently"}  # fmt: skip


def from_file(path: Path, fmt: str, report: ExportReport) -> Iterator[Example]:
    """The user's own data: JSONL in chat-format SFT (`messages`) or DPO pairs (`prompt`, `chosen`,
    `rejected`; `chosen`/`rejected` as text or assistant messages, `prompt` as text or messages)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            yield {**_normalise(record, fmt), "_source": path.name}
        except (ValueError, KeyError, TypeError) as exc:
            reason = "missing field" if isinstance(exc, KeyError) else "not valid JSON or not the format"
            report.dropped[f"{path.name}: {reason}"] += 1


def _messages(value: Any, role: str) -> Messages:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise ValueError("expected text or a list of {role, content} messages")


def _normalise(record: dict[str, Any], fmt: str) -> Example:
    if fmt == "sft":
        if "messages" in record:
            messages = _messages(record["messages"], "user")
        else:  # a DPO pair teaches its chosen answer
            messages = _messages(record["prompt"], "user") + _messages(record["chosen"], "assistant")
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError("the last message must be the assistant's answer")
        return {"messages": messages}
    if fmt == "dpo":
        return {"prompt": _messages(record["prompt"], "user"), "chosen": _messages(record["chosen"], "assistant"),
                "rejected": _messages(record["rejected"], "assistant")}  # fmt: skip
    return {"prompt": _messages(record["prompt"], "user"), "completion": _messages(record["completion"], "assistant"),
            "label": bool(record["label"])}  # fmt: skip


def texts(example: Example) -> list[Messages]:
    """The conversations an example holds (for counting its length)."""
    if "messages" in example:
        return [example["messages"]]
    if "chosen" in example:
        return [example["prompt"] + example["chosen"], example["prompt"] + example["rejected"]]
    return [example["prompt"] + example["completion"]]


def finalise(
    examples: Iterable[Example], report: ExportReport, *, count_tokens: Callable[[Messages], int], max_tokens: int
) -> Iterator[Example]:
    """Drop duplicates and over-long examples, count sources; yields what is written."""
    seen: set[str] = set()
    for example in examples:
        source = example.pop("_source", "data")
        digest = hashlib.sha256(json.dumps(example, sort_keys=True).encode()).hexdigest()
        if digest in seen:
            report.dropped["duplicate"] += 1
            continue
        seen.add(digest)
        if max(count_tokens(t) for t in texts(example)) > max_tokens:
            report.dropped[f"longer than {max_tokens} tokens"] += 1
            continue
        report.written += 1
        report.by_source[source] += 1
        yield example


def write_jsonl(path: Path, examples: Iterable[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[Example]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def holdout(examples: list[Example], share: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, held out): a stable split by content, so the same data always splits the same way."""
    if share <= 0:
        return examples, []

    def rank(example: Example) -> str:
        return hashlib.sha256(f"{seed}:{json.dumps(example, sort_keys=True)}".encode()).hexdigest()

    ordered = sorted(examples, key=rank)
    n = max(1, round(len(ordered) * share)) if len(ordered) > 1 else 0
    return ordered[n:], ordered[:n]
