"""The `parley` command: serve the API, chat with a running server."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from parley import __version__
from parley.cli_db import db_app
from parley.cli_feedback import feedback_app, log_app
from parley.cli_keys import keys_app
from parley.cli_params import params_app, prompts_app
from parley.cli_stats import stats
from parley.cli_tune import adapters_app, evaluate, tune

if TYPE_CHECKING:
    from parley.config import Settings

app = typer.Typer(help="Parley: a self-hosted, OpenAI-compatible chat service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(feedback_app, name="feedback")
app.add_typer(log_app, name="log")
app.add_typer(adapters_app, name="adapters")
app.add_typer(params_app, name="params")
app.add_typer(prompts_app, name="prompts")
app.command("tune")(tune)
app.command("eval")(evaluate)
app.command("stats")(stats)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"parley {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """Parley: a self-hosted, OpenAI-compatible chat service."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind")] = None,
    model: Annotated[Path | None, typer.Option(help="GGUF file (default: embedded SmolLM2-135M)")] = None,
    model_name: Annotated[str | None, typer.Option(help="model id clients use")] = None,
    ctx: Annotated[int | None, typer.Option(help="context window per slot, tokens")] = None,
    slots: Annotated[int | None, typer.Option(help="concurrent sequences")] = None,
    max_queue: Annotated[int | None, typer.Option(help="waiting requests before 503")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for llama.cpp")] = None,
    kv_cache: Annotated[str | None, typer.Option(help="KV cache precision: f16 or q8_0 (less memory)")] = None,
    deterministic: Annotated[
        bool, typer.Option(help="batch-invariant greedy output (same answer whatever else runs; slower prefill)")
    ] = False,
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in ~/.parley)")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis for rate limits shared by replicas")] = None,
    insecure: Annotated[bool, typer.Option(help="serve a non-loopback address without API keys")] = False,
    completion_log: Annotated[
        bool | None, typer.Option("--completion-log/--no-completion-log", help="record every turn (default: on)")
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="text or json (one object per line)")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="also serve /metrics without a key on this port")] = None,
    otlp_endpoint: Annotated[
        str | None, typer.Option(help="send OpenTelemetry traces here (OTLP/HTTP, e.g. http://host:4318/v1/traces)")
    ] = None,
) -> None:
    """Serve the OpenAI-compatible API and the six-stage pipeline."""
    import uvicorn

    from parley.config import Settings
    from parley.observability.logs import configure_logging
    from parley.server.app import create_app
    from parley.server.drain import DrainingServer

    if config is not None:
        os.environ["PARLEY_CONFIG"] = str(config)
    given = {"host": host, "port": port, "model": model, "model_name": model_name, "ctx": ctx,
             "slots": slots, "max_queue": max_queue, "threads": threads, "log_level": log_level, "kv_cache": kv_cache,
             "database_url": database_url, "redis_url": redis_url, "insecure": insecure or None,
             "deterministic": deterministic or None, "completion_log": completion_log, "log_format": log_format,
             "metrics_port": metrics_port, "otlp_endpoint": otlp_endpoint}  # fmt: skip
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    if settings.model is not None and not settings.model.is_file():
        typer.echo(f"error: model file not found: {settings.model}", err=True)
        raise typer.Exit(2)
    _check_exposure(settings)
    configure_logging(settings.log_level, settings.log_format)
    typer.echo(f"Parley {__version__} on http://{_url_host(settings.host)}:{settings.port} "
               f"(docs at /docs, slots={settings.slots}, ctx={settings.ctx})", err=True)  # fmt: skip
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # configure_logging's handler: text or JSON, with request ids
        access_log=False,  # parley.access writes the access lines, with the request id
        timeout_graceful_shutdown=5,
    )
    DrainingServer(config, app.state.drain, settings.drain_seconds).run()


def _check_exposure(settings: Settings) -> None:
    """No keys: run open on loopback (loudly); refuse any other address unless --insecure."""
    from parley.server.auth import is_loopback
    from parley.store.db import Database
    from parley.store.keys import KeyRepository

    db = Database(settings.db_url())
    try:
        keys = KeyRepository(db).count()
    finally:
        db.close()
    if keys:
        return
    if not is_loopback(settings.host) and not settings.insecure:
        typer.echo(
            f"error: refusing to serve {settings.host} with no API keys: anyone who can reach it could use it.\n"
            "Create one first (parley keys create --name NAME --scopes chat,admin) or pass --insecure.",
            err=True,
        )
        raise typer.Exit(2)
    typer.secho(
        "WARNING: no API keys exist, so this server is OPEN: every request is accepted without a key. "
        "Create one with `parley keys create` to turn authentication on.",
        fg=typer.colors.YELLOW, bold=True, err=True,
    )  # fmt: skip


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


@app.command()
def chat(
    url: Annotated[str, typer.Option(help="server base URL")] = "http://127.0.0.1:8000/v1",
    model: Annotated[str | None, typer.Option(help="model id (default: the server's first)")] = None,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    api_key: Annotated[str, typer.Option(envvar="PARLEY_API_KEY", help="bearer key")] = "none",
) -> None:
    """A streaming terminal chat against a running server. Type /exit or Ctrl-D to leave, /reset to clear."""
    import openai

    client = openai.OpenAI(base_url=url, api_key=api_key)
    try:
        model = model or client.models.list().data[0].id
    except openai.APIError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    interactive = sys.stdin.isatty()
    typer.echo(f"Chatting with {model} at {url}. /exit to leave, /reset to start over.", err=True)
    while True:
        try:
            line = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip() in ("/exit", "/quit"):
            break
        if line.strip() == "/reset":
            history = history[:1] if system else []
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        answer = _stream_answer(client, model, history, temperature, max_tokens)
        if answer is None:
            history.pop()
        else:
            history.append({"role": "assistant", "content": answer})


def _stream_answer(client, model, history, temperature, max_tokens) -> str | None:  # type: ignore[no-untyped-def]
    import openai

    parts: list[str] = []
    sys.stdout.write("assistant> ")
    try:
        stream = client.chat.completions.create(
            model=model, messages=history, stream=True, temperature=temperature, max_tokens=max_tokens
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                sys.stdout.write(chunk.choices[0].delta.content)
                sys.stdout.flush()
    except openai.APIError as exc:
        sys.stdout.write("\n")
        typer.echo(f"error: {exc}", err=True)
        return None
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(parts)


def main() -> None:
    app()
