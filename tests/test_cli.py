"""The `parley` command line: `chat` against a running server, `--version`, `serve --help`."""

from __future__ import annotations

import subprocess
import sys

from parley import __version__


def parley(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


def test_version():
    assert parley("--version").stdout.strip() == f"parley {__version__}"


def test_serve_help_lists_the_flags():
    out = parley("serve", "--help").stdout
    for flag in ("--host", "--port", "--model", "--ctx", "--slots"):
        assert flag in out


def test_chat_streams_an_answer_per_line(server):
    result = parley(
        "chat", "--url", server.url + "/v1", "--temperature", "0", "--max-tokens", "12",
        stdin="My name is Ada.\nWhat did I just tell you?\n/exit\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = [line for line in result.stdout.splitlines() if line.startswith("assistant> ")]
    assert len(answers) == 2
    assert all(len(a) > len("assistant> ") for a in answers)
    assert "smollm2-135m-instruct" in result.stderr


def test_chat_reports_an_unreachable_server():
    result = parley("chat", "--url", "http://127.0.0.1:9/v1", stdin="hi\n", timeout=60)
    assert result.returncode == 1
    assert "cannot reach" in result.stderr
