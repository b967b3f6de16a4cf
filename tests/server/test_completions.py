"""POST /v1/completions: raw text continuation, no chat template."""

from __future__ import annotations

from tests.conftest import MODEL


def test_completion_continues_the_prompt(client, reference_llama):
    resp = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert resp.object == "text_completion"
    assert resp.choices[0].text.strip()
    expected = reference_llama.tokenize(b"The capital of France is", add_bos=False, special=False)
    assert resp.usage.prompt_tokens == len(expected)
    assert resp.usage.completion_tokens <= 8


def test_completion_default_max_tokens_is_sixteen(client):
    resp = client.completions.create(
        model=MODEL, prompt="Once upon a time", temperature=0, extra_body={"ignore_eos": True}
    )
    assert resp.usage.completion_tokens == 16
    assert resp.choices[0].finish_reason == "length"


def test_streamed_completion_matches_whole(client):
    kw = {"model": MODEL, "prompt": "def add(a, b):", "max_tokens": 24, "temperature": 0}
    whole = client.completions.create(**kw).choices[0].text
    chunks = list(client.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_completion_accepts_token_ids(client):
    resp = client.completions.create(model=MODEL, prompt=[504, 3575, 282], max_tokens=4, temperature=0)
    assert resp.usage.prompt_tokens == 3
