"""From rated completions (and the user's files) to SFT, DPO and KTO records, with every drop counted."""

from __future__ import annotations

import json

import pytest

from parley.tune.datasets import ExportReport, finalise, from_feedback, from_file, holdout

Q = [{"role": "user", "content": "What port does Parley use?"}]


def completion(cid, answer="Port 3100.", *, messages=Q, outcome="finished", guard=None, kind="chat"):
    return {"id": cid, "kind": kind, "messages": messages, "answer": answer, "outcome": outcome,
            "guard": guard or {"input": [], "output": [], "blocked": None}}  # fmt: skip


def rating(label, correction=None, rater="k1", when="2026-11-25T10:00:00"):
    return {"label": label, "correction": correction, "rater": rater, "updated_at": when}


RATED = [
    (completion("a"), [rating("bad", "Port 8000 by default.")]),  # a correction
    (completion("b", "Port 8000."), [rating("good")]),  # well rated, same prompt as a and c
    (completion("c", "Port 21."), [rating("bad")]),  # badly rated, same prompt
    (completion("d", messages=[{"role": "user", "content": "Hi"}]), [rating("neutral")]),
    (completion("e", outcome="cancelled"), [rating("good")]),
    (completion("f", guard={"input": [{"action": "flag", "findings": []}], "output": []}), [rating("good")]),
    (completion("g", guard={"input": [], "output": [{"scanner": "leak"}], "blocked": "leak:canary"}), [rating("good")]),
    (completion("h", "Port 8000."), [rating("good", rater="k1"), rating("bad", rater="k2")]),  # raters disagree
]


def export(fmt, rated=RATED, max_tokens=1000):
    report = ExportReport()
    examples = from_feedback(rated, fmt, report)
    out = list(finalise(examples, report, count_tokens=lambda m: sum(len(x["content"]) for x in m),
                        max_tokens=max_tokens))  # fmt: skip
    return out, report


def test_sft_takes_corrections_and_well_rated_answers():
    out, report = export("sft")
    answers = [e["messages"][-1]["content"] for e in out]
    assert answers == ["Port 8000 by default.", "Port 8000."]
    assert out[0]["messages"][:-1] == Q
    assert report.by_source == {"correction": 1, "rating": 1}
    assert report.dropped["turn cancelled"] == 1
    assert report.dropped["flagged by the input guard"] == 1 and report.dropped["flagged by the output guard"] == 1
    assert report.dropped["bad rating, no correction"] == 1 and report.dropped["mixed rating, no correction"] == 1


def test_dpo_pairs_come_from_corrections_and_from_answers_rated_differently():
    out, report = export("dpo")
    pairs = {(e["chosen"][0]["content"], e["rejected"][0]["content"]) for e in out}
    assert ("Port 8000 by default.", "Port 3100.") in pairs  # the correction over the answer it corrects
    assert ("Port 8000.", "Port 21.") in pairs and ("Port 8000.", "Port 3100.") in pairs  # same prompt, rated apart
    assert all(e["prompt"] == Q for e in out)
    assert report.by_source["correction"] == 1 and report.by_source["same prompt rated differently"] == 2


def test_kto_takes_thumbs_alone():
    out, report = export("kto")
    assert sorted((e["completion"][0]["content"], e["label"]) for e in out) == [
        ("Port 21.", False), ("Port 3100.", False), ("Port 8000.", True)]  # fmt: skip
    assert report.dropped["neutral rating"] == 1 and report.dropped["mixed rating"] == 1


def test_duplicates_and_long_examples_are_dropped_and_counted():
    twice = [(completion("x", "Port 8000."), [rating("good")]), (completion("y", "Port 8000."), [rating("good")])]
    out, report = export("sft", twice)
    assert len(out) == 1 and report.dropped["duplicate"] == 1
    out, report = export("sft", twice, max_tokens=10)
    assert out == [] and report.dropped["longer than 10 tokens"] == 1


def test_user_data_in_chat_or_pair_form(tmp_path):
    path = tmp_path / "domain.jsonl"
    path.write_text("\n".join([
        json.dumps({"messages": [*Q, {"role": "assistant", "content": "8000"}]}),
        json.dumps({"prompt": "Default host?", "chosen": "127.0.0.1", "rejected": "0.0.0.0"}),
        json.dumps({"messages": Q}),  # no answer
        "not json",
        json.dumps({"prompt": "x"}),
    ]) + "\n")  # fmt: skip
    report = ExportReport()
    sft = list(from_file(path, "sft", report))
    assert [e["messages"][-1]["content"] for e in sft] == ["8000", "127.0.0.1"]
    assert sum(report.dropped.values()) == 3
    dpo = list(from_file(path, "dpo", ExportReport()))
    assert dpo[0]["prompt"] == [{"role": "user", "content": "Default host?"}]
    assert dpo[0]["rejected"] == [{"role": "assistant", "content": "0.0.0.0"}]


@pytest.mark.parametrize("share", [0.2, 0.5])
def test_the_holdout_is_stable_and_disjoint(share):
    examples = [{"messages": [{"role": "user", "content": str(i)}]} for i in range(20)]
    train, held = holdout(examples, share)
    assert len(held) == round(20 * share) and not {json.dumps(e) for e in held} & {json.dumps(e) for e in train}
    assert holdout(list(reversed(examples)), share) == (train, held)
