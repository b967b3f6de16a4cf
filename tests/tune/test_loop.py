"""The learning loop end to end, through the real API and the real CLI: chat → feedback with corrections →
export → a short real tune → the adapter served without restart → it answers differently from the base, the
log names it, base and adapter requests at once stay apart; and the GGUF adapter agrees with the PEFT one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import MODEL, start_server, stop_server

QUESTIONS = [
    ("What port does Parley listen on by default?", "Parley listens on port 8000 by default."),
    ("Which command starts Parley?", "Run make run: it installs everything and serves the model."),
    ("Which header asks for the trace?", "Send X-Parley-Trace: 1 to get the trace of the six stages."),
    ("How do I make a new API key?", "Run parley keys create --name NAME --scopes chat."),
    ("Which database does Parley use by default?", "SQLite, in the ~/.parley directory."),
    ("How do I get reproducible greedy answers?", "Start the server with --deterministic."),
]


def parley(data: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PARLEY_DATA_DIR": str(data)}
    result = subprocess.run([sys.executable, "-m", "parley", *args], capture_output=True, text=True, env=env,
                            timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learn")
    data = tmp / "data"
    srv = start_server(tmp, "--slots", "4", "--ctx", "1024", "--deterministic",
                       env={"PARLEY_DATA_DIR": str(data), "PARLEY_ADAPTER_POLL_SECONDS": "0.5"})  # fmt: skip
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=120)
    for question, better in QUESTIONS:
        resp = c.chat.completions.create(model=MODEL, max_tokens=24, temperature=0,
                                         messages=[{"role": "user", "content": question}])  # fmt: skip
        rated = httpx.post(srv.url + "/v1/feedback", timeout=30,
                           json={"completion_id": resp.id, "rating": "down", "correction": better})  # fmt: skip
        assert rated.status_code == 201, rated.text
    tuned = parley(data, "tune", "--method", "sft", "--from-feedback", "--name", "faq", "--max-steps", "8", "--lr",
                   "3e-3", "--targets", "all", "--rank", "16", "--batch-size", "6", "--holdout", "0")  # fmt: skip
    yield srv, c, data, json.loads(tuned.stdout.strip().splitlines()[-1])
    stop_server(srv)


def test_export_writes_each_format_and_reports(loop):
    _, _, data, _ = loop
    counts = {}
    for fmt in ("sft", "dpo", "kto"):
        out = data / f"{fmt}.jsonl"
        result = parley(data, "feedback", "export", "--format", fmt, "--out", str(out))
        counts[fmt] = len(out.read_text().splitlines())
        assert f"{counts[fmt]} examples written" in result.stderr
    assert counts == {"sft": 6, "dpo": 6, "kto": 6}
    pair = json.loads((data / "dpo.jsonl").read_text().splitlines()[0])
    assert pair["chosen"][0]["content"] in {b for _, b in QUESTIONS}


def test_the_tune_is_recorded_and_written_in_both_formats(loop):
    _, _, _, tuned = loop
    assert tuned["steps"] == 8 and tuned["registered"] is True
    assert Path(tuned["gguf"]).is_file() and (Path(tuned["peft"]) / "adapter_config.json").is_file()


def test_the_adapter_is_served_without_restart_and_answers_differently(loop):
    srv, c, _, _ = loop
    deadline = time.monotonic() + 30
    while "faq" not in {m.id for m in c.models.list().data} and time.monotonic() < deadline:
        time.sleep(0.3)
    card = c.models.retrieve("faq")
    assert card.model_extra["parent"] == MODEL

    def ask(question, model):
        return c.chat.completions.create(model=model, max_tokens=24, temperature=0,
                                         messages=[{"role": "user", "content": question}])  # fmt: skip

    question = QUESTIONS[0][0]
    base, tuned = ask(question, MODEL), ask(question, "faq")
    assert base.choices[0].message.content != tuned.choices[0].message.content
    row = httpx.get(f"{srv.url}/admin/completions/{tuned.id}", timeout=30).json()
    assert row["adapter"] == "faq" and row["model"] == MODEL

    jobs = [(q, m) for q, _ in QUESTIONS[:3] for m in (MODEL, "faq")]
    alone = [ask(q, m).choices[0].message.content for q, m in jobs]

    async def together():
        return await asyncio.gather(*(asyncio.to_thread(ask, q, m) for q, m in jobs))

    assert [r.choices[0].message.content for r in asyncio.run(together())] == alone


def test_the_gguf_adapter_agrees_with_the_peft_adapter_on_next_token_logits(loop):
    from parley.engines.llamacpp.engine import embedded_model_path
    from parley.tune.evaluate import agreement

    _, _, data, tuned = loop
    texts = [f"{q} {a}" for q, a in QUESTIONS] + ["The quick brown fox jumps over the lazy dog near the river bank."]
    result = agreement(texts, embedded_model_path(), Path(tuned["peft"]), Path(tuned["gguf"]),
                       data / "tune" / "base")  # fmt: skip
    assert result["delta_correlation"] >= 0.95, result  # the adapter's effect on the logits, in both runtimes
    assert result["top1_agreement"] >= 0.9, result


def test_eval_scores_pairs_base_against_adapter(loop, tmp_path):
    _, _, data, _ = loop
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": q}],
                                         "chosen": [{"role": "assistant", "content": a}],
                                         "rejected": [{"role": "assistant", "content": "I do not know."}]}) + "\n"
                             for q, a in QUESTIONS[:3]))  # fmt: skip
    result = json.loads(parley(data, "eval", "--adapter", "faq", "--data", str(pairs)).stdout)
    preference = result["preference"]
    assert preference["base"]["pairs"] == preference["adapter"]["pairs"] == 3
    assert preference["adapter"]["mean_margin"] > preference["base"]["mean_margin"]  # it learned these answers
    from parley.store.db import Database
    from parley.store.runs import TuneRunRepository

    db = Database(f"sqlite:///{data / 'parley.db'}")
    run = TuneRunRepository(db).latest("faq")
    db.close()
    assert run["status"] == "finished" and run["steps"] == 8 and len(run["losses"]) == 8
    assert run["data"]["examples"] == 6 and run["evaluation"]["preference"]["adapter"]["pairs"] == 3
