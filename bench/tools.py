"""Tool calling on an evaluation set: do calls parse, do their arguments validate, do streamed and whole calls
agree, and does the model pick the right function and arguments? For Parley (the embedded SmolLM2-135M) and,
with `--llama-server PATH`, for llama.cpp's C++ server on the same GGUF and the same cases (`--jinja`).

The set (built here, 105 cases): single (one tool offered), choice (five tools offered, one fits), parallel
(two calls wanted), none (no tool helps). Each case runs with `tool_choice` auto and required, whole and
streamed, at temperature 0.

    python bench/tools.py [--llama-server PATH] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile

import httpx
import jsonschema
from common import ENV, RESULTS, free_port, parley_cmd, start, stop

CITIES = ["Paris", "Rome", "Tokyo", "Lima", "Oslo", "Cairo", "Madrid", "Berlin", "Sydney", "Toronto"]
PAIRS = [(3, 4), (12, 30), (7, 8), (100, 250), (15, 27), (2, 9), (41, 1), (64, 36), (5, 5), (18, 24)]
CURRENCIES = [("USD", "EUR"), ("GBP", "JPY"), ("EUR", "CHF"), ("CAD", "USD"), ("AUD", "NZD")]
ZONES = ["Europe/Paris", "Asia/Tokyo", "America/New_York", "Africa/Cairo", "Australia/Sydney"]
FREE = ["Write a haiku about the sea.", "What does 'bonjour' mean?", "Tell me a fun fact about cats.",
        "Say hello.", "What is a noun?", "Suggest a name for a dog.", "Describe the colour blue.",
        "Give me a synonym for happy.", "What is your favourite season?",
        "Write one sentence about trees."]  # fmt: skip


def fn(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required, "additionalProperties": False}}}  # fmt: skip


WEATHER = fn("get_weather", "Current weather in a city", {"city": {"type": "string"}}, ["city"])
ADD = fn("add", "Add two numbers", {"a": {"type": "number"}, "b": {"type": "number"}}, ["a", "b"])
CONVERT = fn("convert_currency", "Convert an amount between currencies", {"amount": {"type": "number"},
             "from": {"type": "string"}, "to": {"type": "string"}}, ["amount", "from", "to"])  # fmt: skip
TIME = fn("get_time", "The current time in an IANA time zone", {"zone": {"type": "string"}}, ["zone"])
SEARCH = fn("search_docs", "Search the product documentation", {"query": {"type": "string"}}, ["query"])
ALL = [WEATHER, ADD, CONVERT, TIME, SEARCH]


def cases() -> list[dict]:
    out = []
    for city in CITIES:
        out.append({"kind": "single", "q": f"What is the weather in {city}?", "tools": [WEATHER],
                    "want": [("get_weather", {"city": city})]})  # fmt: skip
        out.append({"kind": "choice", "q": f"Is it raining in {city} right now?", "tools": ALL,
                    "want": [("get_weather", {"city": city})]})  # fmt: skip
    for a, b in PAIRS:
        out.append({"kind": "single", "q": f"What is {a} plus {b}?", "tools": [ADD],
                    "want": [("add", {"a": a, "b": b})]})  # fmt: skip
        out.append({"kind": "choice", "q": f"Add {a} and {b}.", "tools": ALL, "want": [("add", {"a": a, "b": b})]})
    for i, (src, dst) in enumerate(CURRENCIES):
        amount = 10 * (i + 1)
        out.append({"kind": "choice", "q": f"Convert {amount} {src} to {dst}.", "tools": ALL,
                    "want": [("convert_currency", {"amount": amount, "from": src, "to": dst})]})  # fmt: skip
        out.append({"kind": "single", "q": f"How much is {amount} {src} in {dst}?", "tools": [CONVERT],
                    "want": [("convert_currency", {"amount": amount, "from": src, "to": dst})]})  # fmt: skip
    for zone in ZONES:
        out.append({"kind": "single", "q": f"Tell me the current time in {zone}.", "tools": [TIME],
                    "want": [("get_time", {"zone": zone})]})  # fmt: skip
        out.append({"kind": "choice", "q": f"What time is it in the {zone} time zone?", "tools": ALL,
                    "want": [("get_time", {"zone": zone})]})  # fmt: skip
    for topic in ("rate limits", "API keys", "streaming", "adapters", "profiles"):
        out.append({"kind": "choice", "q": f"Find the documentation page about {topic}.", "tools": ALL,
                    "want": [("search_docs", {"query": topic})]})  # fmt: skip
    for i, city in enumerate(CITIES):
        other = CITIES[(i + 3) % len(CITIES)]
        out.append({"kind": "parallel", "q": f"What is the weather in {city} and in {other}?", "tools": [WEATHER],
                    "want": [("get_weather", {"city": city}), ("get_weather", {"city": other})]})  # fmt: skip
        a, b = PAIRS[i]
        out.append({"kind": "parallel", "q": f"Give the weather in {city}, and add {a} and {b}.",
                    "tools": [WEATHER, ADD], "want": [("get_weather", {"city": city}), ("add", {"a": a, "b": b})]})
    for q in FREE:
        out.append({"kind": "none", "q": q, "tools": ALL, "want": []})
        out.append({"kind": "none", "q": q.replace(".", "?") if q.endswith(".") else q, "tools": [WEATHER, ADD],
                    "want": []})  # fmt: skip
    return out


def same(value, wanted) -> bool:
    if isinstance(wanted, str):
        return isinstance(value, str) and value.strip().lower() == wanted.lower()
    return isinstance(value, (int, float)) and float(value) == float(wanted)


def judge(case: dict, calls: list[tuple[str, str]]) -> dict:
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in case["tools"]}
    parsed, valid, decoded = True, True, []
    for name, arguments in calls:
        try:
            args = json.loads(arguments)
            decoded.append((name, args))
        except ValueError:
            parsed = valid = False
            continue
        try:
            jsonschema.validate(args, schemas[name])
        except (jsonschema.ValidationError, KeyError):
            valid = False
    want = case["want"]
    right_function = sorted(n for n, _ in decoded) == sorted(n for n, _ in want)
    right_arguments = right_function and all(
        any(n == wn and all(same(a.get(k), v) for k, v in wa.items()) for n, a in decoded) for wn, wa in want
    )
    return {"calls": len(calls), "parsed": parsed, "valid": valid, "right_function": right_function,
            "right_arguments": right_arguments}  # fmt: skip


async def ask(client: httpx.AsyncClient, url: str, model: str, case: dict, choice: str, stream: bool):
    for attempt in range(3):  # llama-server closes kept-alive connections now and then: a new one is asked
        try:
            return await _ask(client, url, model, case, choice, stream)
        except httpx.RemoteProtocolError:
            if attempt == 2:
                raise
    return None


async def _ask(client: httpx.AsyncClient, url: str, model: str, case: dict, choice: str, stream: bool):
    body = {"model": model, "messages": [{"role": "user", "content": case["q"]}], "tools": case["tools"],
            "tool_choice": choice, "max_tokens": 160, "temperature": 0, "stream": stream}  # fmt: skip
    if not stream:
        r = await client.post(url + "/v1/chat/completions", json=body)
        if r.status_code != 200:
            return None
        message = r.json()["choices"][0]["message"]
        return [(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []]
    calls: dict[int, list[str]] = {}
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            return None
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice_ in json.loads(line[6:]).get("choices", []):
                for f in (choice_.get("delta") or {}).get("tool_calls") or []:
                    call = calls.setdefault(f.get("index", 0), ["", ""])
                    call[0] += (f.get("function") or {}).get("name") or ""
                    call[1] += (f.get("function") or {}).get("arguments") or ""
    return [(n, a) for _, (n, a) in sorted(calls.items())]


async def evaluate(url: str, model: str, items: list[dict]) -> dict:
    rows = []
    async with httpx.AsyncClient(timeout=300) as client:
        for case in items:
            for choice in ("auto", "required"):
                whole = await ask(client, url, model, case, choice, False)
                streamed = await ask(client, url, model, case, choice, True)
                row = {"kind": case["kind"], "choice": choice, "error": whole is None or streamed is None}
                if not row["error"]:
                    row |= judge(case, whole) | {"stream_equal": [(n, json.loads(a) if _ok(a) else a)
                                                                  for n, a in whole] == [
                        (n, json.loads(a) if _ok(a) else a) for n, a in streamed]}  # fmt: skip
                    row["stream_parsed"] = judge(case, streamed)["parsed"]
                rows.append(row)
    return summarise(rows)


def _ok(a: str) -> bool:
    try:
        json.loads(a)
        return True
    except ValueError:
        return False


def summarise(rows: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for choice in ("auto", "required"):
        for kind in ("single", "choice", "parallel", "none", "all"):
            sel = [r for r in rows if r["choice"] == choice and (kind == "all" or r["kind"] == kind)]
            ok = [r for r in sel if not r["error"]]
            if not sel:
                continue

            def rate(key: str, rows_: list[dict] = ok) -> float | None:
                return round(sum(bool(r[key]) for r in rows_) / len(rows_), 3) if rows_ else None

            called = [r for r in ok if r["calls"]]
            out[f"{choice}/{kind}"] = {"cases": len(sel), "errors": len(sel) - len(ok),
                                       "with_calls": len(called), "parsed": rate("parsed", called),
                                       "stream_parsed": rate("stream_parsed", called), "valid": rate("valid", called),
                                       "stream_equal": rate("stream_equal"), "right_function": rate("right_function"),
                                       "right_arguments": rate("right_arguments")}  # fmt: skip
    return out


def markdown(name: str, summary: dict) -> str:
    lines = [f"### {name}", "", "| choice/kind | cases | with calls | calls parse (whole / streamed) | args valid | "
             "streamed = whole | right function | right arguments |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    for key, s in summary.items():
        lines.append(f"| {key} | {s['cases']} | {s['with_calls']} | {f(s['parsed'])} / {f(s['stream_parsed'])} | "
                     f"{f(s['valid'])} | {f(s['stream_equal'])} | {f(s['right_function'])} | "
                     f"{f(s['right_arguments'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-server", help="also evaluate llama.cpp's server (started with --jinja)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--skip-parley", action="store_true", help="only llama-server (its report is merged in)")
    args = ap.parse_args()
    from parley.engines.llamacpp.engine import embedded_model_path

    items = cases()[: args.limit or None]
    print(f"{len(items)} cases", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved = RESULTS / "tools.json"
    report = json.loads(saved.read_text()) if args.skip_parley and saved.exists() else {}
    if not args.skip_parley:
        port = free_port()
        ENV.update({"PARLEY_DATA_DIR": tempfile.mkdtemp(prefix="parley-bench-")})
        proc = start(parley_cmd(port, "--deterministic", "--slots", "2"), f"http://127.0.0.1:{port}", "/ready",
                     RESULTS / "tools.parley.log")  # fmt: skip
        try:
            report["parley"] = asyncio.run(evaluate(f"http://127.0.0.1:{port}", "smollm2-135m-instruct", items))
        finally:
            stop(proc)
            ENV.clear()
    if args.llama_server:
        port = free_port()
        proc = start([args.llama_server, "-m", str(embedded_model_path()), "--port", str(port), "--jinja", "-np", "2",
                      "-c", "8192", "--no-webui"], f"http://127.0.0.1:{port}", "/health",
                     RESULTS / "tools.llama-server.log")  # fmt: skip
        try:
            report["llama-server"] = asyncio.run(evaluate(f"http://127.0.0.1:{port}", "x", items))
        finally:
            stop(proc)
    (RESULTS / "tools.json").write_text(json.dumps(report, indent=2))
    text = "".join(markdown(name, s) for name, s in report.items())
    (RESULTS / "tools.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
