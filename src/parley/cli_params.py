"""`parley params report` (what adaptive profiles have learnt from ratings) and `parley prompts test` (a
profile run on a case file, side by side with an earlier run)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from parley.cli_feedback import DatabaseOpt, settings

params_app = typer.Typer(help="Parameters that adaptive profiles learn from ratings.")
prompts_app = typer.Typer(help="Prompt regression: run a profile on cases and compare with an earlier run.")


@params_app.command("report")
def report(
    database_url: DatabaseOpt = None,
    profile: Annotated[str | None, typer.Option(help="only this profile")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the rows as JSON")] = False,
) -> None:
    """The learnt table: per profile and complexity bucket, each rated parameter setting, its ratings, mean
    reward and posterior mean; ★ marks the setting chosen now (outside exploration)."""
    from parley.params.tuner import Tuner
    from parley.store.db import Database
    from parley.store.feedback import FeedbackRepository

    s = settings(database_url)
    db = Database(s.db_url(), migrate=False)
    try:
        tuner = Tuner(FeedbackRepository(db), explore=s.params_explore)
        loaded = tuner.reload()
    finally:
        db.close()
    rows = [r for r in tuner.bandit.table() if profile is None or r["profile"] == profile]
    if as_json:
        typer.echo(json.dumps({"ratings": loaded, "explore": s.params_explore, "rows": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Learnt parameters ({loaded} ratings; explore {s.params_explore:.0%})")
    for column in ("profile", "bucket", "temperature / top_p / budget", "ratings", "mean", "posterior", ""):
        table.add_column(column, justify="right" if column in ("ratings", "mean", "posterior") else "left")
    for r in rows:
        mean = "–" if r["mean_reward"] is None else f"{r['mean_reward']:.2f}"
        table.add_row(r["profile"], r["bucket"], _arm(r["arm"]), str(r["ratings"]), mean,
                      f"{r['posterior_mean']:.2f}", "★" if r["exploit"] else "")  # fmt: skip
    Console().print(table if rows else "No ratings of adaptive profiles yet.")


def _arm(arm_id: str) -> str:
    from parley.params.bandit import Arm

    arm = Arm.parse(arm_id)
    return f"{arm.temperature:g} / {arm.top_p:g} / ×{arm.max_tokens_scale:g}"


def _cases(path: Path) -> list[dict[str, Any]]:
    """JSONL: one case per line, `{"id"?, "prompt" | "messages", "metadata"?}`."""
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path}:{n}: not JSON: {exc}") from exc
        if not isinstance(case, dict) or not ("prompt" in case or "messages" in case):
            raise typer.BadParameter(f"{path}:{n}: a case needs `prompt` or `messages`")
        case.setdefault("id", str(n))
        cases.append(case)
    return cases


@prompts_app.command("test")
def test(
    profile: Annotated[str, typer.Argument(help="the profile to run")],
    cases: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL cases")],
    url: Annotated[str, typer.Option(envvar="PARLEY_URL", help="server base URL")] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="PARLEY_API_KEY")] = None,
    against: Annotated[Path | None, typer.Option(help="an earlier run's file; default: the latest run")] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="where runs are kept; default: data_dir/prompt-runs")] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the comparison as JSON")] = False,
) -> None:
    """Run PROFILE on each case at temperature 0 through a running server, keep the run, and show the answers
    beside the earlier run's; exit code 1 when any answer changed."""
    import openai

    folder = (runs_dir or settings(None).data_dir / "prompt-runs") / profile
    folder.mkdir(parents=True, exist_ok=True)
    earlier_path = against or max(folder.glob("*.jsonl"), default=None, key=lambda p: p.name)
    earlier = {}
    if earlier_path is not None:
        earlier = {r["id"]: r for r in map(json.loads, earlier_path.read_text(encoding="utf-8").splitlines()) if r}
    client = openai.OpenAI(base_url=url.rstrip("/") + "/v1", api_key=api_key or "none", max_retries=1, timeout=300)
    results = []
    for case in _cases(cases):
        messages = case.get("messages") or [{"role": "user", "content": case["prompt"]}]
        extra = {"metadata": case["metadata"]} if case.get("metadata") else {}
        start = time.perf_counter()
        try:
            out = client.chat.completions.create(model=f"profile/{profile}", messages=messages, temperature=0,
                                                 max_tokens=max_tokens, extra_body=extra or None)  # fmt: skip
            answer, finish = out.choices[0].message.content or "", out.choices[0].finish_reason
        except openai.APIStatusError as exc:
            answer, finish = f"[error {exc.status_code}: {exc.message}]", "error"
        before = earlier.get(case["id"], {}).get("answer")
        results.append({"id": case["id"], "answer": answer, "finish_reason": finish,
                        "seconds": round(time.perf_counter() - start, 2), "before": before,
                        "changed": before is not None and before != answer})  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    saved = folder / f"{stamp}.jsonl"
    saved.write_text("".join(json.dumps({k: r[k] for k in ("id", "answer", "finish_reason", "seconds")}) + "\n"
                             for r in results), encoding="utf-8")  # fmt: skip
    changed = sum(r["changed"] for r in results)
    if as_json:
        typer.echo(json.dumps({"profile": profile, "run": str(saved), "against": str(earlier_path or ""),
                               "changed": changed, "cases": results}, indent=2))  # fmt: skip
    else:
        _show(profile, results, saved, earlier_path, changed)
    raise typer.Exit(1 if changed else 0)


def _show(profile: str, results: list[dict[str, Any]], saved: Path, earlier: Path | None, changed: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"profile/{profile}: {len(results)} cases, {changed} changed", show_lines=True)
    table.add_column("case")
    table.add_column(f"earlier ({earlier.stem if earlier else 'none'})", ratio=1)
    table.add_column(f"now ({saved.stem})", ratio=1)
    for r in results:
        mark = "[red]changed[/red]" if r["changed"] else ("new" if r["before"] is None else "same")
        table.add_row(f"{r['id']}\n{mark}", r["before"] or "–", r["answer"])
    Console().print(table)
