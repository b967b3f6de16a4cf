"""`parley tune`, `parley eval` and `parley adapters`: from ratings to a served adapter, measured."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from parley.cli_feedback import DatabaseOpt, build_examples, settings

if TYPE_CHECKING:
    from parley.config import Settings

adapters_app = typer.Typer(help="The adapter registry: what every server replica serves.")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def _check_name(name: str) -> str:
    import re

    if not re.fullmatch(NAME_PATTERN, name):
        raise typer.BadParameter("letters, digits, '.', '_', '-'; first a letter or digit", param_hint="--name")
    return name


def _tune_base(s: Settings, base: str | None, base_gguf: Path | None) -> tuple[str, Path, int]:
    """The served model an adapter is trained for, the GGUF weights it trains on, and the threads to use. An
    upstream model (vLLM) has no weights here: `--base-gguf` gives the same model's weights."""
    from parley.config import LlamaCppSpec
    from parley.engines.llamacpp.engine import embedded_model_path, model_id

    specs = s.engine_specs()
    names = [model_id(x) if isinstance(x, LlamaCppSpec) else x.name for x in specs]
    if base is not None and base not in names:
        raise typer.BadParameter(f"no served model {base!r}; served: {', '.join(names)}", param_hint="--base")
    spec = specs[names.index(base)] if base is not None else specs[0]
    if isinstance(spec, LlamaCppSpec):
        gguf = base_gguf or (Path(spec.model) if spec.model else embedded_model_path())
        return model_id(spec), gguf, spec.threads
    if base_gguf is None:
        raise typer.BadParameter(f"{spec.name} is served upstream: give its weights with --base-gguf",
                                 param_hint="--base-gguf")  # fmt: skip
    return spec.name, base_gguf, s.threads


def tune(
    method: Annotated[str, typer.Option(help="sft, dpo or kto")],
    name: Annotated[str, typer.Option(help="the adapter's name: requests use it as the model")],
    from_feedback: Annotated[bool, typer.Option("--from-feedback", help="train on the log's ratings")] = False,
    data: Annotated[Path | None, typer.Option(help="train on this file too (chat SFT or DPO pairs)")] = None,
    epochs: Annotated[float, typer.Option(help="passes over the data")] = 1.0,
    max_steps: Annotated[int, typer.Option(help="stop after this many steps (overrides epochs)")] = -1,
    learning_rate: Annotated[float, typer.Option("--lr")] = 5e-4,
    rank: Annotated[int, typer.Option(help="LoRA rank")] = 8,
    targets: Annotated[str, typer.Option(help="attention or all (every linear layer)")] = "attention",
    batch_size: Annotated[int, typer.Option()] = 4,
    max_tokens: Annotated[int, typer.Option(help="drop examples longer than this")] = 512,
    holdout: Annotated[float, typer.Option(help="share kept out of training for `parley eval`")] = 0.2,
    register: Annotated[bool, typer.Option(help="serve it: add it to the adapter registry")] = True,
    base: Annotated[str | None, typer.Option(help="the served model it adapts (default: the first engine)")] = None,
    base_gguf: Annotated[Path | None, typer.Option(help="the base's weights as GGUF, for an upstream base")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Fine-tune a LoRA adapter on the CPU, write it as PEFT and GGUF, record the run, and register it so every
    running server serves it as model NAME (no restart)."""
    from rich.console import Console

    from parley.server.adapter_sync import announce
    from parley.store.adapters import AdapterRepository
    from parley.store.db import Database
    from parley.store.runs import TuneRunRepository
    from parley.tune.datasets import FORMATS, write_jsonl
    from parley.tune.datasets import holdout as split
    from parley.tune.train import TARGETS, TuneConfig, train

    console = Console(stderr=True)
    _check_name(name)
    if method not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--method")
    if targets not in TARGETS:
        raise typer.BadParameter(f"use one of {', '.join(TARGETS)}", param_hint="--targets")
    if not from_feedback and data is None:
        raise typer.BadParameter("give --from-feedback, --data FILE, or both")
    s = settings(database_url)
    base_model, base_gguf, threads = _tune_base(s, base, base_gguf)
    examples, report = build_examples(method, s, from_feedback=from_feedback, data=data, max_tokens=max_tokens)
    for line in report.lines():
        console.print(line)
    train_set, held_out = split(examples, holdout)
    if not train_set:
        console.print("[red]nothing to train on[/red]")
        raise typer.Exit(2)
    out = s.data_dir / "adapters" / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_jsonl(out / "train.jsonl", train_set)
    write_jsonl(out / "heldout.jsonl", held_out)
    cfg = TuneConfig(method=method, rank=rank, alpha=2 * rank, targets=targets, learning_rate=learning_rate,
                     epochs=epochs, max_steps=max_steps, batch_size=batch_size, max_length=max_tokens,
                     threads=threads)  # fmt: skip
    db = Database(s.db_url())
    runs = TuneRunRepository(db)
    summary = {"examples": len(train_set), "held_out": len(held_out), "sources": dict(report.by_source),
               "dropped": dict(report.dropped), "from_feedback": from_feedback, "data": str(data) if data else None,
               "heldout_file": str(out / "heldout.jsonl")}  # fmt: skip
    run_id = runs.start(name, method, str(base_gguf), summary, cfg.public())
    console.print(f"tuning {name} ({method}, {len(train_set)} examples, {len(held_out)} held out) on {base_gguf.name}")

    def on_log(step: int, logs: dict[str, float]) -> None:
        extra = "".join(f"  {k} {logs[k]:.3f}" for k in ("rewards/margins", "rewards/accuracies") if k in logs)
        console.print(f"step {step:4}  loss {logs['loss']:.4f}{extra}")

    try:
        with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs: stdout stays the result
            result = train(train_set, cfg, base_gguf, out, cache_root=s.data_dir / "tune" / "base", name=name,
                           on_log=on_log)  # fmt: skip
    except BaseException:
        runs.finish(run_id, steps=0, losses=[], status="failed")
        db.close()
        raise
    runs.finish(run_id, steps=result.steps, losses=result.losses)
    if register:
        AdapterRepository(db).register(name, base_model, str(result.gguf_path), peft_path=str(result.peft_dir),
                                       run_id=run_id)  # fmt: skip
    db.close()
    if register:
        announce(s.redis_url, name)  # every replica (and an upstream vLLM through them) loads it now
    console.print(f"done in {result.seconds:.0f} s: {result.steps} steps, loss {result.losses[0]:.3f} → "
                  f"{result.losses[-1]:.3f}" if result.losses else f"done in {result.seconds:.0f} s")  # fmt: skip
    typer.echo(json.dumps({"name": name, "run_id": run_id, "steps": result.steps, "seconds": round(result.seconds, 1),
                           "gguf": str(result.gguf_path), "peft": str(result.peft_dir), "registered": register}))


def evaluate(
    adapter: Annotated[str, typer.Option(help="the adapter's name")],
    data: Annotated[Path | None, typer.Option(help="pairs to score (default: what the tune held out)")] = None,
    faq: Annotated[bool, typer.Option(help="also: answer match on the Parley FAQ test split")] = False,
    agreement: Annotated[bool, typer.Option(help="also: GGUF in llama.cpp vs PEFT in PyTorch, logits")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Measure an adapter on data it was not trained on, against the base model; recorded with its run."""
    from parley.engines.llamacpp.engine import embedded_model_path
    from parley.store.adapters import AdapterRepository
    from parley.store.db import Database
    from parley.store.runs import TuneRunRepository
    from parley.tune import evaluate as ev
    from parley.tune.datasets import read_jsonl

    s = settings(database_url)
    db = Database(s.db_url())
    record = AdapterRepository(db).get(adapter)
    if record is None or record.peft_path is None:
        typer.echo(f"error: no trained adapter named {adapter}", err=True)
        raise typer.Exit(1)
    run = TuneRunRepository(db).get(record.run_id) if record.run_id else None
    spec = s.engine_specs()[0]
    base_gguf = Path(spec.model) if spec.model else embedded_model_path()
    cache = s.data_dir / "tune" / "base"
    results: dict[str, Any] = {}
    heldout = data or (Path(run["data"]["heldout_file"]) if run and run["data"].get("heldout_file") else None)
    pairs = [p for p in read_jsonl(heldout) if "chosen" in p] if heldout and heldout.is_file() else []
    if pairs:
        results["preference"] = ev.compare_preference(pairs, base_gguf, Path(record.peft_path), cache)
    if faq:
        results["faq_answer_match"] = ev.answer_match(ev.faq("test"), base_gguf, Path(record.gguf_path))
    if agreement:
        texts = [f"{r['question']} {r['answer']}" for r in ev.faq("test")[:10]]
        results["agreement"] = ev.agreement(texts, base_gguf, Path(record.peft_path), Path(record.gguf_path), cache)
    if not results:
        typer.echo("nothing to measure: no held-out pairs (give --data, --faq or --agreement)", err=True)
        raise typer.Exit(2)
    if run is not None:
        TuneRunRepository(db).record_evaluation(run["id"], results)
    db.close()
    typer.echo(json.dumps(results, indent=2))


@adapters_app.command("list")
def list_adapters(database_url: DatabaseOpt = None) -> None:
    from parley.store.adapters import AdapterRepository
    from parley.store.db import Database

    db = Database(settings(database_url).db_url())
    try:
        for a in AdapterRepository(db).list():
            state = "enabled " if a.enabled else "disabled"
            typer.echo(f"{a.name:24} {state} on {a.base_model}  {a.gguf_path}")
    finally:
        db.close()


@adapters_app.command("add")
def add_adapter(
    name: Annotated[str, typer.Option()],
    gguf: Annotated[Path, typer.Option(help="a llama.cpp GGUF LoRA adapter file")],
    base_model: Annotated[str | None, typer.Option(help="the served model it applies to (default: the first)")] = None,
    peft: Annotated[Path | None, typer.Option(help="the same adapter in PEFT format (for vLLM)")] = None,
    scale: Annotated[float, typer.Option()] = 1.0,
    database_url: DatabaseOpt = None,
) -> None:
    """Register an adapter trained elsewhere; every running server loads it."""
    from parley.server.adapter_sync import announce
    from parley.store.adapters import AdapterRepository
    from parley.store.db import Database

    _check_name(name)
    if not gguf.is_file():
        raise typer.BadParameter(f"no such file: {gguf}", param_hint="--gguf")
    s = settings(database_url)
    db = Database(s.db_url())
    try:
        AdapterRepository(db).register(name, base_model or _tune_base(s, None, gguf)[0], str(gguf.resolve()),
                                       peft_path=str(peft.resolve()) if peft else None, scale=scale)  # fmt: skip
    finally:
        db.close()
    announce(s.redis_url, name)
    typer.echo(f"registered {name}")


@adapters_app.command("remove")
def remove_adapter(name: Annotated[str, typer.Argument()], database_url: DatabaseOpt = None) -> None:
    """Stop serving an adapter on every replica (its files and record stay)."""
    from parley.server.adapter_sync import announce
    from parley.store.adapters import AdapterRepository
    from parley.store.db import Database

    s = settings(database_url)
    db = Database(s.db_url())
    try:
        if AdapterRepository(db).set_enabled(name, False) is None:
            typer.echo(f"error: no adapter named {name}", err=True)
            raise typer.Exit(1)
    finally:
        db.close()
    announce(s.redis_url, name)
    typer.echo(f"{name} disabled")
