"""Continuous batching through the API: isolation under concurrency, cancellation, admission control."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.conftest import MODEL, start_server, stop_server

WORDS = ["apple", "banana", "cherry", "dragon", "eagle", "falcon", "guitar", "harbor",
         "island", "jungle", "kettle", "lemon", "mango", "nectar", "orange", "pepper"]  # fmt: skip


@pytest.fixture(scope="module")
def wide_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("wide"), "--slots", "16", "--ctx", "1024")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def narrow_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("narrow"), "--slots", "1", "--max-queue", "1", "--ctx", "1024")
    yield srv
    stop_server(srv)


def slots_busy(url: str) -> int:
    return httpx.get(url + "/parley/status").json()["models"][MODEL]["slots_busy"]


def ask_code_words(url: str, words: list[str]) -> list[tuple[str, str | None]]:
    """Each word's question, streamed, all at once: (answer, finish reason) per word."""

    async def main():
        c = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)

        async def ask(word):
            prompt = f"The secret code word is {word}. What is the secret code word?"
            stream = await c.chat.completions.create(
                model=MODEL, stream=True, temperature=0, max_tokens=24,
                messages=[{"role": "user", "content": prompt}],
            )  # fmt: skip
            parts, finish = [], None
            async for chunk in stream:
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
                    finish = chunk.choices[0].finish_reason or finish
            return "".join(parts), finish

        return await asyncio.gather(*(ask(w) for w in words))

    return asyncio.run(main())


def test_concurrent_greedy_answers_equal_each_prompts_own_sequential_answer(server):
    """Isolation, judged against each prompt's own answer on the same server: with `--deterministic`, a greedy
    answer does not depend on what else is decoded, so 16 requests at once (4 slots, 12 queued, prefixes copied
    between slots) must give exactly the answers the same prompts get one at a time."""
    sequential = [ask_code_words(server.url, [w])[0] for w in WORDS]
    concurrent = ask_code_words(server.url, WORDS)
    assert all(finish in ("stop", "length") for _, finish in concurrent)
    assert concurrent == sequential
    status = httpx.get(server.url + "/parley/status").json()["models"][MODEL]
    assert status["deterministic"] is True and status["slots_busy"] == 0


def test_sixteen_concurrent_streams_share_engine_steps(wide_server):
    """The default (unified KV) layout: 16 streams decode together, each with its own prompt's token count."""
    before = httpx.get(wide_server.url + "/parley/status").json()["models"][MODEL]
    results = ask_code_words(wide_server.url, WORDS)
    assert len(results) == 16
    assert all(text.strip() and finish in ("stop", "length") for text, finish in results)
    status = httpx.get(wide_server.url + "/parley/status").json()["models"][MODEL]
    assert status["slots_busy"] == 0 and status["kv_layout"] == "unified"
    steps = status["steps"] - before["steps"]
    tokens = status["generated_tokens"] - before["generated_tokens"]
    assert steps < tokens / 4  # tokens of many sequences shared each engine step


def test_client_disconnect_frees_the_slot(narrow_server):
    url = narrow_server.url
    body = {"model": MODEL, "stream": True, "max_tokens": 900, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me a very long story."}]}  # fmt: skip
    with httpx.Client(timeout=60) as h, h.stream("POST", url + "/v1/chat/completions", json=body) as resp:
        lines = resp.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        assert slots_busy(url) == 1
    # The connection is closed mid-stream: the slot must come back within an engine step or two.
    deadline = time.monotonic() + 5
    while slots_busy(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slots_busy(url) == 0
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    assert c.chat.completions.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "hi"}])


def test_full_queue_answers_503_with_retry_after_and_keeps_serving(narrow_server):
    url = narrow_server.url
    long = {"model": MODEL, "stream": True, "max_tokens": 900, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me a very long story."}]}  # fmt: skip

    async def main():
        async with httpx.AsyncClient(timeout=60) as h:
            async def hold(started: asyncio.Event):
                async with h.stream("POST", url + "/v1/chat/completions", json=long) as resp:
                    async for line in resp.aiter_lines():
                        if line.startswith("data:"):
                            started.set()
                        if stop.is_set():
                            return

            stop = asyncio.Event()
            first, second = asyncio.Event(), asyncio.Event()
            running = asyncio.create_task(hold(first))  # takes the only slot
            await first.wait()
            queued = asyncio.create_task(hold(second))  # waits in the queue (max_queue=1)
            for _ in range(100):
                if httpx.get(url + "/parley/status").json()["models"][MODEL]["queued"] == 1:
                    break
                await asyncio.sleep(0.05)
            rejected = await h.post(url + "/v1/chat/completions", json={**long, "stream": False})
            stop.set()
            await asyncio.gather(running, queued)
            return rejected

    rejected = asyncio.run(main())
    assert rejected.status_code == 503
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["error"]["code"] == "server_overloaded"
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    deadline = time.monotonic() + 10
    while slots_busy(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.chat.completions.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "hi"}])


def test_prefix_cache_counter_grows_for_a_repeated_system_prompt(wide_server):
    c = openai.OpenAI(base_url=wide_server.url + "/v1", api_key="x", max_retries=0)
    system = "You are a support assistant for ACME routers. Be brief and precise. " * 3
    before = httpx.get(wide_server.url + "/parley/status").json()["models"][MODEL]["prompt_tokens_cached"]
    for q in ("How do I reset it?", "How do I update it?", "Which port is WAN?"):
        last = c.chat.completions.create(
            model=MODEL, max_tokens=4,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": q}],
        )  # fmt: skip
    after = httpx.get(wide_server.url + "/parley/status").json()["models"][MODEL]["prompt_tokens_cached"]
    assert last.usage.prompt_tokens_details.cached_tokens >= 40
    assert after - before >= 80
