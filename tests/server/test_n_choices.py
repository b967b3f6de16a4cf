"""`n > 1`: n answers in `choices[i]`, whole and streamed; the engine computes their shared prompt once and
the other choices copy its cache; each choice is logged under its own id."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

from tests.conftest import MODEL


def status(server) -> dict:
    return httpx.get(server.url + "/parley/status", timeout=30).json()["models"][MODEL]


def test_n_greedy_choices_equal_the_single_answer_and_share_the_prompt(client, server):
    messages = [{"role": "user", "content": f"Name a colour. (ticket {uuid.uuid4().hex[:8]})"}]
    before = status(server)
    many = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0, n=3)
    after = status(server)
    one = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert [c.message.content for c in many.choices] == [one.choices[0].message.content] * 3
    assert many.usage.prompt_tokens == one.usage.prompt_tokens  # counted once
    assert many.usage.completion_tokens == 3 * one.usage.completion_tokens
    # a new prompt, computed once: the two other choices took it from the cache
    shared = after["prompt_tokens_cached"] - before["prompt_tokens_cached"]
    assert shared >= 2 * (one.usage.prompt_tokens - 1)
    assert many.usage.prompt_tokens_details.cached_tokens <= many.usage.prompt_tokens


def test_streamed_choices_interleave_under_one_id(client):
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
           "temperature": 0, "n": 2}  # fmt: skip
    whole = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert len({c.id for c in chunks}) == 1
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finished) == 2
    usage = [c for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0] is chunks[-1] and usage[0].usage.total_tokens == whole.usage.total_tokens


def test_each_choice_is_logged_under_its_own_id(client, server):
    resp = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=4, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    for completion_id in (resp.id, f"{resp.id}-1"):
        logged = httpx.get(server.url + f"/admin/completions/{completion_id}", timeout=30)
        assert logged.status_code == 200, logged.text


def test_too_many_choices(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], n=17)
    assert err.value.body["param"] == "n"
