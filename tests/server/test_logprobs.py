"""Log-probabilities, as evaluation harnesses read them: chat `logprobs` / `top_logprobs` and completions
`logprobs`, whole and streamed, in OpenAI's formats. The values are the model's log-softmax at each generated
position: the test recomputes them with llama-cpp-python's own API on the same GGUF, evaluating the prompt and
then each generated token as the deterministic server does (flash attention, micro-batches under 64 rows), and
compares within 1e-3 (measured here: equal). With `echo`, the prompt's own tokens are compared the same way."""

from __future__ import annotations

import math

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import MODEL

MESSAGES = [{"role": "user", "content": "Name a colour."}]
TOLERANCE = 1e-3


def reference_logprobs(llm, prompt_tokens: list[int], generated: list[int]) -> np.ndarray:
    """log-softmax rows for each generated position, from one evaluation of prompt + generated tokens."""
    llm.reset()
    llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else None
    tokens = prompt_tokens + generated
    llm.eval(tokens)
    logits = np.array(llm.scores[len(prompt_tokens) - 1 : len(tokens) - 1], dtype=np.float64)
    top = logits.max(axis=1, keepdims=True)
    return logits - (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))


@pytest.fixture(scope="module")
def logits_llama():
    from llama_cpp import Llama

    from parley.engines.llamacpp.engine import embedded_model_path
    from parley.engines.llamacpp.gguf_model import portable_defaults

    with portable_defaults():
        llm = Llama(str(embedded_model_path()), n_ctx=1024, n_threads=2, verbose=False, logits_all=True,
                    flash_attn=True, n_batch=32, n_ubatch=32)  # fmt: skip
    yield llm
    llm.close()


def test_chat_logprobs_are_the_models_log_softmax(client, server, logits_llama):
    resp = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0,
                                          logprobs=True, top_logprobs=5)  # fmt: skip
    entries = resp.choices[0].logprobs.content
    assert len(entries) == resp.usage.completion_tokens >= 1
    prompt = httpx.post(server.url + "/tokenize", json={"model": MODEL, "messages": MESSAGES}, timeout=30).json()
    generated = [logits_llama.tokenize(bytes(e.bytes), add_bos=False, special=True) for e in entries]
    assert all(len(t) == 1 for t in generated), "each entry is one token"
    reference = reference_logprobs(logits_llama, prompt["tokens"], [t[0] for t in generated])
    for row, entry, (token,) in zip(reference, entries, generated, strict=True):
        assert abs(entry.logprob - row[token]) < TOLERANCE
        assert len(entry.top_logprobs) == 5
        assert entry.top_logprobs[0].token == entry.token  # greedy: the chosen token is the most likely
        alternatives = [logits_llama.tokenize(bytes(t.bytes), add_bos=False, special=True)[0]
                        for t in entry.top_logprobs]  # fmt: skip
        ranked = [t.logprob for t in entry.top_logprobs]
        assert ranked == sorted(ranked, reverse=True)
        for alt, token_id in zip(entry.top_logprobs, alternatives, strict=True):
            assert abs(alt.logprob - row[token_id]) < TOLERANCE
        assert sum(math.exp(t.logprob) for t in entry.top_logprobs) <= 1.0 + 1e-6


def test_streamed_logprobs_equal_the_whole_answers(client):
    ask = {"model": MODEL, "messages": MESSAGES, "max_tokens": 8, "temperature": 0, "logprobs": True,
           "top_logprobs": 2}  # fmt: skip
    whole = client.chat.completions.create(**ask).choices[0].logprobs.content
    chunks = list(client.chat.completions.create(**ask, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 6)) for e in streamed] == [(e.token, round(e.logprob, 6)) for e in whole]


def test_completion_logprobs_in_the_legacy_format(client):
    resp = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0,
                                     logprobs=3)  # fmt: skip
    lp = resp.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    assert lp.text_offset[0] == 0 and all(b - a == len(t) for a, b, t in zip(lp.text_offset, lp.text_offset[1:],
                                                                             lp.tokens, strict=False))  # fmt: skip
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert len(top) == 3 and max(top.values()) == pytest.approx(logprob) and top[token] == pytest.approx(logprob)


def test_echo_puts_the_prompt_before_the_answer(client):
    plain = client.completions.create(model=MODEL, prompt="Two plus two is", max_tokens=4, temperature=0)
    echoed = client.completions.create(model=MODEL, prompt="Two plus two is", max_tokens=4, temperature=0,
                                       echo=True)  # fmt: skip
    assert echoed.choices[0].text == "Two plus two is" + plain.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="Two plus two is", max_tokens=4, temperature=0, echo=True, stream=True))  # fmt: skip
    assert streamed == echoed.choices[0].text


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES, "top_logprobs": 2}, "top_logprobs"),
        ({"messages": MESSAGES, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"prompt": "Hi", "logprobs": 6}, "logprobs"),
    ],
)
def test_logprob_requests_that_cannot_be_served(server, body, param):
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    resp = httpx.post(server.url + path, json={"model": MODEL, "max_tokens": 2, **body}, timeout=30)
    assert resp.status_code == 400, resp.text
    assert param in (resp.json()["error"]["param"] or "")


def test_no_logprobs_unless_asked(client):
    resp = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    assert resp.choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, top_logprobs=1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_echo_with_logprobs_gives_the_prompts_own(client, server, logits_llama, stream):
    prompt = "The capital of France is"
    ask = {"model": MODEL, "prompt": prompt, "max_tokens": 4, "temperature": 0, "logprobs": 2, "echo": True}
    if stream:
        chunks = [c.choices[0] for c in client.completions.create(**ask, stream=True) if c.choices]
        text = "".join(c.text for c in chunks)
        lp = {k: [x for c in chunks if c.logprobs for x in getattr(c.logprobs, k)]
              for k in ("tokens", "token_logprobs", "top_logprobs", "text_offset")}  # fmt: skip
    else:
        choice = client.completions.create(**ask).choices[0]
        text, lp = choice.text, {k: getattr(choice.logprobs, k) for k in ("tokens", "token_logprobs",
                                                                          "top_logprobs", "text_offset")}  # fmt: skip
    tokens = httpx.post(server.url + "/tokenize", json={"model": MODEL, "prompt": prompt}, timeout=30).json()["tokens"]
    n = len(tokens)
    assert text.startswith(prompt) and "".join(lp["tokens"]) == text
    assert "".join(lp["tokens"][:n]) == prompt and len(lp["tokens"]) == n + 4
    offsets = lp["text_offset"]
    assert offsets[0] == 0 and all(b - a == len(t) for a, b, t in zip(offsets, offsets[1:], lp["tokens"], strict=False))
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None  # nothing predicts the first token
    logits_llama.reset()
    logits_llama.eval(tokens)
    rows = np.array(logits_llama.scores[: n - 1], dtype=np.float64)
    top = rows.max(axis=1, keepdims=True)
    reference = rows - (top + np.log(np.exp(rows - top).sum(axis=1, keepdims=True)))
    for pos in range(1, n):
        assert abs(lp["token_logprobs"][pos] - reference[pos - 1][tokens[pos]]) < TOLERANCE
        assert len(lp["top_logprobs"][pos]) == 2
        assert max(lp["top_logprobs"][pos].values()) == pytest.approx(reference[pos - 1].max(), abs=TOLERANCE)
