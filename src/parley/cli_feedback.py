"""`parley feedback export` and `parley log prune`: the completion log and its ratings, from the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from parley.config import Settings
    from parley.tune.datasets import Example, ExportReport

feedback_app = typer.Typer(help="Ratings of logged completions, and the training data they make.")
log_app = typer.Typer(help="The completion log.")

DatabaseOpt = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: settings)")]


def settings(database_url: str | None) -> Settings:
    from parley.config import Settings

    return Settings(**({"database_url": database_url} if database_url else {}))


def build_examples(
    fmt: str, settings: Settings, *, from_feedback: bool, data: Path | None, max_tokens: int,
    model: str | None = None, adapter: str | None = None,
) -> tuple[list[Example], ExportReport]:  # fmt: skip
    """The examples of one format from the log's ratings and/or a file, cleaned; and the report of drops."""
    from parley.store.db import Database
    from parley.store.feedback import FeedbackFilter, FeedbackRepository
    from parley.tune.datasets import ExportReport, finalise, from_file
    from parley.tune.datasets import from_feedback as examples_of
    from parley.tune.tokens import TokenCounter

    report = ExportReport()
    raw: list[Example] = []
    if from_feedback:
        db = Database(settings.db_url())
        try:
            rated = FeedbackRepository(db).rated_completions(FeedbackFilter(model=model, adapter=adapter))
            raw.extend(examples_of(rated, fmt, report))
        finally:
            db.close()
    if data is not None:
        raw.extend(from_file(data, fmt, report))
    counter = TokenCounter(settings.engine_specs()[0].model)
    try:
        return list(finalise(raw, report, count_tokens=counter.count, max_tokens=max_tokens)), report
    finally:
        counter.close()


@feedback_app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="sft, dpo or kto")],
    out: Annotated[Path, typer.Option(help="JSONL file to write")],
    data: Annotated[Path | None, typer.Option(help="your own data to add: chat-format SFT or DPO pairs")] = None,
    only_data: Annotated[bool, typer.Option("--only-data", help="leave the log's feedback out")] = False,
    max_tokens: Annotated[int, typer.Option(help="drop examples longer than this")] = 1024,
    model: Annotated[str | None, typer.Option(help="only completions of this model")] = None,
    adapter: Annotated[str | None, typer.Option(help="only completions of this adapter")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Write rated completions (and `--data`) as TRL training data, saying what was dropped and why."""
    from parley.tune.datasets import FORMATS, write_jsonl

    if fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if data is not None and not data.is_file():
        raise typer.BadParameter(f"no such file: {data}", param_hint="--data")
    examples, report = build_examples(fmt, settings(database_url), from_feedback=not only_data, data=data,
                                      max_tokens=max_tokens, model=model, adapter=adapter)  # fmt: skip
    write_jsonl(out, examples)
    for line in report.lines():
        typer.echo(line, err=True)
    typer.echo(str(out))


@log_app.command("prune")
def prune(
    older_than: Annotated[int | None, typer.Option(help="days (default: the retention setting)")] = None,
    include_rated: Annotated[bool, typer.Option(help="also delete rated completions and their feedback")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Delete log rows older than the retention (rated ones are training data: kept unless told)."""
    from parley.store.completions import CompletionRepository
    from parley.store.db import Database

    s = settings(database_url)
    days = older_than if older_than is not None else s.log_retention_days
    if days <= 0:
        typer.echo("nothing to do: retention is 0 (keep everything); pass --older-than DAYS", err=True)
        raise typer.Exit(0)
    db = Database(s.db_url())
    try:
        n = CompletionRepository(db).prune(datetime.now(UTC) - timedelta(days=days), keep_rated=not include_rated)
    finally:
        db.close()
    typer.echo(f"deleted {n} log rows older than {days} days")
