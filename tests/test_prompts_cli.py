"""`parley prompts test`: a profile run on a case file through a real server, kept, and compared with the
previous run; a changed profile shows as changed answers (exit code 1)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx


def run_cli(srv, cases, runs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", "prompts", "test", "regress", "--cases", str(cases), "--url", srv.url,
         "--runs-dir", str(runs), "--max-tokens", "12", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_second_run_is_compared_with_the_first_and_a_profile_change_shows(server, tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps({"id": "port", "prompt": "Which port does a web server use by default?"}) + "\n"
        + json.dumps({"id": "greet", "messages": [{"role": "user", "content": "Say hello."}]}) + "\n"
    )  # fmt: skip
    runs = tmp_path / "runs"
    put = httpx.put(server.url + "/v1/profiles/regress", json={"system_prompt": "Answer in one sentence."})
    assert put.status_code in (200, 201)
    try:
        first = run_cli(server, cases, runs)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert [c["id"] for c in report["cases"]] == ["port", "greet"]
        assert all(c["before"] is None and c["answer"] for c in report["cases"])

        again = run_cli(server, cases, runs)  # greedy and deterministic: the same answers
        assert again.returncode == 0, again.stdout
        same = json.loads(again.stdout)
        assert same["changed"] == 0 and all(c["before"] == c["answer"] for c in same["cases"])

        httpx.put(server.url + "/v1/profiles/regress", json={"system_prompt": "Reply only in French, in capitals."})
        changed = run_cli(server, cases, runs)
        result = json.loads(changed.stdout)
        assert changed.returncode == (1 if result["changed"] else 0)
        assert result["against"].endswith(".jsonl") and len(list((runs / "regress").glob("*.jsonl"))) == 3
        assert all(c["before"] == s["answer"] for c, s in zip(result["cases"], same["cases"], strict=True))
    finally:
        httpx.delete(server.url + "/v1/profiles/regress")
