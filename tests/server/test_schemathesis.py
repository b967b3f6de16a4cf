"""Schemathesis (issue 17) against `/openapi.json`: every route, with a key holding every scope and with none;
no 5xx, and every status, content type and body as documented. Bounded (10 examples per operation and phase,
a fixed seed) so CI runs the same cases each time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    env = {**os.environ, "PARLEY_DATA_DIR": str(tmp / "data")}
    scopes = "chat,feedback,admin,tools"
    create = [sys.executable, "-m", "parley", "keys", "create", "--name", "fuzz", "--scopes", scopes]
    made = subprocess.run(create, env=env, capture_output=True, text=True, check=True)
    key = next(line for line in made.stdout.splitlines() if line.startswith("pk-"))
    srv = start_server(tmp, "--slots", "2", "--ctx", "256", env={"PARLEY_DATA_DIR": str(tmp / "data")})
    yield srv, key, tmp
    stop_server(srv)


@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "without-key"])
def test_every_route_answers_as_documented(keyed, with_key):
    srv, key, tmp = keyed
    header = f"Authorization: Bearer {key}" if with_key else "X-Parley-Fuzz: no-key"
    report = tmp / f"report-{with_key}.log"
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", srv.url + "/openapi.json", "-H", header,
           "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--max-examples", "10", "--seed", "1",
           "-w", "1", "--request-timeout", "120", "--no-color"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    report.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert " passed" in done.stdout and "failures" not in done.stdout.split("SUMMARY")[-1].lower()
    assert "Traceback" not in srv.logs()  # no unhandled error on the server
