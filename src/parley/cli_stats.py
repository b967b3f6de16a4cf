"""`parley stats`: the dashboard's headline figures in the terminal, from a running server's `/admin/stats`."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SPARK = "▁▂▃▄▅▆▇█"


def parse_window(text: str) -> float:
    """`90s`, `15m`, `1h`, `7d`, or plain seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"{text!r}: use e.g. 15m, 1h or 7d")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


def sparkline(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    top = max(present, default=0) or 1
    return "".join("·" if v is None else SPARK[min(int(v / top * (len(SPARK) - 1) + 0.5), len(SPARK) - 1)]
                   for v in values)  # fmt: skip


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def stats(
    url: Annotated[str, typer.Option(envvar="PARLEY_URL", help="server base URL")] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="PARLEY_API_KEY", help="an admin key")] = None,
    window: Annotated[str, typer.Option(help="how far back: 15m, 1h, 7d")] = "1h",
    buckets: Annotated[int, typer.Option(min=1, max=1000, help="points in each sparkline")] = 24,
    as_json: Annotated[bool, typer.Option("--json", help="the raw figures")] = False,
) -> None:
    """Requests, latency, TTFT, tokens/s, feedback, guard blocks and adapters over a window."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    params: dict[str, Any] = {"window": parse_window(window), "buckets": buckets, "low_rated": 5}
    try:
        r = httpx.get(url.rstrip("/") + "/admin/stats", params=params, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if r.status_code != 200:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:300]
        typer.echo(f"error: {r.status_code}: {message}", err=True)
        raise typer.Exit(1)
    data = r.json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    render(data, window)


def render(data: dict[str, Any], window: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t, s = data["totals"], data["series"]
    table = Table(title=f"Parley, last {window}", title_justify="left", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("over time", no_wrap=True, overflow="crop")
    table.add_row("requests", f"{t['requests']}", sparkline(s["requests"]))
    table.add_row("failed / cancelled", f"{t['failed']} / {t['cancelled']} ({_pct(t['error_rate'])})",
                  sparkline(s["failed"]))  # fmt: skip
    table.add_row("latency p50 / p95", f"{_ms(t['latency_p50_ms'])} / {_ms(t['latency_p95_ms'])}",
                  sparkline(s["latency_p95_ms"]))  # fmt: skip
    table.add_row("TTFT p50 / p95", f"{_ms(t['ttft_p50_ms'])} / {_ms(t['ttft_p95_ms'])}", sparkline(s["ttft_p95_ms"]))
    table.add_row("tokens/s (generated)", f"{t['tokens_per_s']:.2f} ({t['completion_tokens']} tokens)",
                  sparkline(s["tokens_per_s"]))  # fmt: skip
    table.add_row("feedback 👍 / 👎", f"{t['feedback_good']} / {t['feedback_bad']} ({_pct(t['feedback_ratio'])} good)",
                  sparkline(s["feedback_bad"]))  # fmt: skip
    for scanner, n in t["guard_blocks"].items():
        table.add_row(f"blocked by {scanner}", str(n), sparkline(s["guard_blocks"][scanner]))
    for adapter, n in t["adapters"].items():
        table.add_row(f"served by {adapter}", str(n), sparkline(s["adapters"][adapter]))
    for model, live in data["live"]["models"].items():
        table.add_row(f"{model} now", f"{live['running']:.0f} running, {live['waiting']:.0f} waiting", "")
    console = Console()
    console.print(table)
    if data["low_rated"]:
        low = Table(title="Newest low-rated answers", title_justify="left", header_style="bold")
        low.add_column("rated", no_wrap=True)
        low.add_column("adapter", no_wrap=True)
        low.add_column("question", ratio=1, overflow="fold")
        low.add_column("answer", ratio=1, overflow="fold")
        for row in data["low_rated"]:
            text = (row["question"] or "")[:200], row["answer"][:200]
            low.add_row(row["rated_at"][5:16].replace("T", " "), row["adapter"] or "base", *text)
        console.print(low)
