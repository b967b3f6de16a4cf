"""The learning loop measured end to end on the Parley FAQ (src/parley/tune/data/parley_faq.jsonl).

1. A Parley server answers the 130 training questions of the FAQ (two phrasings of each of its 65 facts);
   each answer is rated down with the FAQ's answer as the correction, through `POST /v1/feedback`.
   It also answers the 65 test questions (the third phrasing): those answers are never rated or trained on.
2. DPO from the feedback: `parley tune --method dpo --from-feedback` (20% of the pairs held out), then
   `parley eval`: preference accuracy, base vs adapter, on the held-out feedback pairs and on the test
   questions' pairs (chosen: the FAQ answer; rejected: the base model's own answer).
3. SFT on the FAQ's training split as domain data (`--data`), then answer match on the test questions (does
   the greedy answer contain the fact's key?), base vs adapter, and the GGUF/PEFT agreement.
4. The time of `parley tune` on 200 DPO pairs.

    python bench/learning.py

Writes bench/results/learning.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, free_port, parley_cmd, start, stop

from parley.tune.evaluate import faq

DPO_FLAGS = ["--epochs", "2", "--lr", "5e-4"]
SFT_FLAGS = ["--epochs", "4", "--lr", "2e-3", "--targets", "all", "--rank", "16"]


def cli(data: Path, *args: str) -> dict:
    env = {**os.environ, "PARLEY_DATA_DIR": str(data)}
    start_s = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "parley", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    sys.stderr.write(result.stderr[-1500:])
    return {**json.loads(result.stdout), "_seconds": time.perf_counter() - start_s}


async def ask_all(url: str, model: str, questions: list[str]) -> list[tuple[str, str]]:
    """(completion id, answer) per question, greedy, 4 at a time."""
    sem = asyncio.Semaphore(4)
    async with httpx.AsyncClient(timeout=300) as client:

        async def one(q: str) -> tuple[str, str]:
            async with sem:
                r = await client.post(url + "/v1/chat/completions", json={
                    "model": model, "temperature": 0, "max_tokens": 48, "messages": [{"role": "user", "content": q}]})
                r.raise_for_status()
                body = r.json()
                return body["id"], body["choices"][0]["message"]["content"]

        return list(await asyncio.gather(*(one(q) for q in questions)))


def pair(question: str, chosen: str, rejected: str) -> dict:
    return {"prompt": [{"role": "user", "content": question}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}  # fmt: skip


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="parley-learning-"))
    data = work / "data"
    train, test = faq("train"), faq("test")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ["PARLEY_DATA_DIR"] = str(data)
    proc = start(parley_cmd(port, "--slots", "4", "--ctx", "1024"), url, "/ready", work / "server.log")
    try:
        model = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        answered = asyncio.run(ask_all(url, model, [r["question"] for r in train]))
        for (cid, _), row in zip(answered, train, strict=True):
            httpx.post(url + "/v1/feedback", timeout=60,
                       json={"completion_id": cid, "rating": "down", "correction": row["answer"]}).raise_for_status()
        test_answers = asyncio.run(ask_all(url, model, [r["question"] for r in test]))
    finally:
        stop(proc)
    test_pairs = work / "test_pairs.jsonl"
    test_pairs.write_text("".join(json.dumps(pair(r["question"], r["answer"], a)) + "\n"
                                  for r, (_, a) in zip(test, test_answers, strict=True)))  # fmt: skip
    report: dict = {"feedback": len(train), "test_questions": len(test)}

    dpo = cli(data, "tune", "--method", "dpo", "--from-feedback", "--name", "faq-dpo", "--holdout", "0.2", *DPO_FLAGS)
    report["dpo"] = {"steps": dpo["steps"], "seconds": round(dpo["_seconds"], 1)}
    report["dpo"]["held_out_feedback"] = cli(data, "eval", "--adapter", "faq-dpo")["preference"]
    report["dpo"]["test_questions"] = cli(data, "eval", "--adapter", "faq-dpo", "--data", str(test_pairs))["preference"]

    sft_data = work / "faq_train.jsonl"
    sft_data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": r["question"]},
                                                         {"role": "assistant", "content": r["answer"]}]}) + "\n"
                                for r in train))  # fmt: skip
    sft = cli(data, "tune", "--method", "sft", "--data", str(sft_data), "--name", "faq-sft", "--holdout", "0",
              *SFT_FLAGS)  # fmt: skip
    measured = cli(data, "eval", "--adapter", "faq-sft", "--faq", "--agreement")
    report["sft"] = {"steps": sft["steps"], "seconds": round(sft["_seconds"], 1), **measured}

    pairs200 = work / "pairs200.jsonl"
    every = zip(train + test, answered + test_answers, strict=True)
    rows = [pair(r["question"], r["answer"], a) for r, (_, a) in every]  # 195
    rows += [pair(r["question"], r["answer"], "I do not know.") for r in train[: 200 - len(rows)]]
    pairs200.write_text("".join(json.dumps(p) + "\n" for p in rows))
    timed = cli(data, "tune", "--method", "dpo", "--data", str(pairs200), "--name", "timing-200", "--holdout", "0",
                "--max-tokens", "1024", "--no-register")  # fmt: skip
    report["tune_200_pairs"] = {"steps": timed["steps"], "seconds": round(timed["_seconds"], 1)}

    (RESULTS / "learning.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (RESULTS / "learning.md").write_text(md)
    print(md)


def markdown(r: dict) -> str:
    def pref(p: dict) -> str:
        return (f"{100 * p['base']['accuracy']:.0f}% → {100 * p['adapter']['accuracy']:.0f}% "
                f"({p['gain_points']:+.0f} points; margin {p['base']['mean_margin']:.1f} → "
                f"{p['adapter']['mean_margin']:.1f}; {p['adapter']['pairs']} pairs)")  # fmt: skip

    match, agree, timed = r["sft"]["faq_answer_match"], r["sft"]["agreement"], r["tune_200_pairs"]
    return "\n".join([
        "| measure | result |", "|---|---|",
        f"| DPO from {r['feedback']} feedback pairs ({r['dpo']['steps']} steps, {r['dpo']['seconds']} s): "
        f"preference accuracy, held-out feedback | {pref(r['dpo']['held_out_feedback'])} |",
        f"| same adapter, the {r['test_questions']} test questions (never rated) | "
        f"{pref(r['dpo']['test_questions'])} |",
        f"| SFT on the FAQ training split ({r['sft']['steps']} steps, {r['sft']['seconds']} s): test answers "
        f"holding the fact | {100 * match['base']:.0f}% → {100 * match['adapter']:.0f}% of {match['questions']} |",
        f"| GGUF adapter in llama.cpp vs PEFT in PyTorch: top-1 next token, effect correlation | "
        f"{100 * agree['top1_agreement']:.1f}%, {agree['delta_correlation']:.3f} ({agree['positions']} positions) |",
        f"| `parley tune` on 200 DPO pairs | {timed['seconds']} s ({timed['steps']} steps) |",
    ]) + "\n"  # fmt: skip


if __name__ == "__main__":
    main()
