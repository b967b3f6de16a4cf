"""Chat completions through the official openai client against a real server and the real model."""

from __future__ import annotations

import openai
import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from tests.conftest import MODEL, step_detail

STAGES = ["input", "preprocess", "model", "output", "postprocess", "final"]


def ask(client, content, **kw):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **kw)


def stream_text(client, messages, **kw):
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_non_streaming_chat_answers_with_text(client):
    resp = ask(client, "Name three colors of the rainbow.", temperature=0, max_tokens=48)
    answer = resp.choices[0].message.content
    assert resp.object == "chat.completion"
    assert resp.model == MODEL
    assert resp.choices[0].message.role == "assistant"
    assert sum(ch.isalpha() for ch in answer) >= 10
    assert any(c in answer.lower() for c in ("red", "orange", "yellow", "green", "blue", "indigo", "violet"))
    assert resp.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize(
    "prompt",
    [
        "Write a short paragraph about the ocean.",
        "Explain what a hash table is.",
        "List five fruits.",
    ],
)
def test_streamed_deltas_join_to_the_non_streamed_answer(client, prompt):
    messages = [{"role": "user", "content": prompt}]
    kw = {"temperature": 0, "seed": 7, "max_tokens": 80}
    whole = client.chat.completions.create(model=MODEL, messages=messages, **kw)
    text, chunks = stream_text(client, messages, **kw)
    assert text == whole.choices[0].message.content
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_first_stream_chunk_carries_role_and_a_token(client):
    _, chunks = stream_text(client, [{"role": "user", "content": "Hello!"}], temperature=0, max_tokens=40)
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.content  # time-to-first-token measures a real token
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)


def test_max_tokens_ends_with_length(client):
    resp = ask(client, "Write a long essay about the history of computing.", max_tokens=6, temperature=0,
               extra_body={"ignore_eos": True})  # fmt: skip
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 6


def test_max_completion_tokens_is_honoured(client):
    resp = ask(client, "Write a long essay about rivers.", max_completion_tokens=9, temperature=0,
               extra_body={"ignore_eos": True})  # fmt: skip
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 9


def test_stop_sequence_stops_before_it(client):
    prompt = "Count from 1 to 10, separated by commas."
    free = ask(client, prompt, temperature=0, max_tokens=60).choices[0].message.content
    words = free.split()
    assert len(words) >= 4
    stop = words[len(words) // 2]  # a piece of this server's own answer, whatever this CPU made it
    resp = ask(client, prompt, temperature=0, max_tokens=60, stop=[stop])
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content == free[: free.index(stop)]


def test_stop_sequence_in_stream(client):
    text, chunks = stream_text(
        client, [{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        temperature=0, max_tokens=60, stop=["4"],
    )  # fmt: skip
    assert "4" not in text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_usage_equals_the_models_own_tokenizer(client, reference_llama):
    messages = [{"role": "user", "content": "Define entropy in one sentence."}]
    resp = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=24,
                                          extra_headers={"X-Parley-Trace": "1"})  # fmt: skip
    template = reference_llama.metadata["tokenizer.chat_template"]
    prompt = Jinja2ChatFormatter(template, "<|im_end|>", "<|im_start|>")(messages=messages).prompt
    expected = reference_llama.tokenize(prompt.encode(), add_bos=False, special=True)
    assert resp.usage.prompt_tokens == len(expected)
    # Every generated token is counted (what the engine produced, before post-processing changed the text).
    output = next(t for t in resp.model_extra["parley_trace"] if t["stage"] == "output")["detail"]
    assert resp.usage.completion_tokens == output["completion_tokens"]
    assert 1 <= resp.usage.completion_tokens <= 24
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_stream_usage_chunk_matches_non_streamed_usage(client):
    messages = [{"role": "user", "content": "What is a noun?"}]
    kw = {"temperature": 0, "max_tokens": 30}
    whole = client.chat.completions.create(model=MODEL, messages=messages, **kw)
    _, chunks = stream_text(client, messages, stream_options={"include_usage": True}, **kw)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_trace_lists_the_six_stages_in_order(client):
    resp = ask(client, "Hi", max_tokens=10, extra_headers={"X-Parley-Trace": "1"})
    trace = resp.model_extra["parley_trace"]
    assert [t["stage"] for t in trace] == STAGES
    assert [s["step"] for s in trace[1]["steps"]] == ["normalize", "guard_input", "render", "limits"]
    assert all(t["duration_ms"] >= 0 for t in trace)
    assert trace[2]["duration_ms"] > 0  # the model took time
    assert trace[3]["detail"]["completion_tokens"] == resp.usage.completion_tokens


def test_trace_rides_on_the_last_stream_chunk(client):
    _, chunks = stream_text(
        client, [{"role": "user", "content": "Hi"}], max_tokens=10,
        stream_options={"include_usage": True}, extra_headers={"X-Parley-Trace": "1"},
    )  # fmt: skip
    assert [t["stage"] for t in chunks[-1].model_extra["parley_trace"]] == STAGES
    assert all("parley_trace" not in (c.model_extra or {}) for c in chunks[:-1])


def test_no_trace_without_the_header(client):
    resp = ask(client, "Hi", max_tokens=5)
    assert "parley_trace" not in (resp.model_extra or {})


def test_unset_parameters_come_from_the_complexity_estimate(client):
    resp = ask(client, "What is 2+2?", extra_headers={"X-Parley-Trace": "1"})
    model = step_detail(resp.model_extra["parley_trace"], "params")
    assert model["max_tokens_from"] == "estimate"
    assert model["temperature_from"] == "estimate"
    assert model["complexity"]["math"] is True
    assert model["temperature"] == 0.2
    explicit = ask(client, "What is 2+2?", max_tokens=7, temperature=0.5, extra_headers={"X-Parley-Trace": "1"})
    detail = step_detail(explicit.model_extra["parley_trace"], "params")
    assert detail["max_tokens"] == 7 and detail["temperature"] == 0.5
    assert "max_tokens_from" not in detail


def test_structured_json_input_is_rendered_deterministically(client):
    a = {"task": "translate", "text": "good morning", "target_language": "French"}
    b = {"target_language": "French", "text": "good morning", "task": "translate"}
    headers = {"X-Parley-Trace": "1"}
    ra = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": a}], temperature=0, max_tokens=20, extra_headers=headers
    )
    rb = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": b}], temperature=0, max_tokens=20, extra_headers=headers
    )
    assert ra.model_extra["parley_trace"][0]["detail"]["structured_messages"] == 1
    assert ra.usage.prompt_tokens == rb.usage.prompt_tokens
    assert ra.choices[0].message.content == rb.choices[0].message.content


def test_content_parts_are_joined(client):
    parts = [{"type": "text", "text": "Say the word"}, {"type": "text", "text": "banana."}]
    resp = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": parts}], max_tokens=10, temperature=0
    )
    assert resp.choices[0].message.content


def test_noise_is_normalised_before_tokenising(client):
    clean = ask(client, "Tell me about cats.", max_tokens=8, temperature=0)
    noisy = ask(client, "Tell\u200b me   about\x07 cats.\r\n", max_tokens=8, temperature=0,
                extra_headers={"X-Parley-Trace": "1"})  # fmt: skip
    assert noisy.usage.prompt_tokens == clean.usage.prompt_tokens
    assert noisy.choices[0].message.content == clean.choices[0].message.content
    normalized = step_detail(noisy.model_extra["parley_trace"], "normalize")
    assert normalized["zero_width_removed"] == 1 and normalized["control_removed"] == 1


def test_repeated_system_prompt_is_served_from_the_prefix_cache(client):
    system = "You are Parley's test assistant. Answer in one short sentence. " * 4
    for question in ("What is rain?", "What is snow?"):
        resp = client.chat.completions.create(
            model=MODEL, max_tokens=8, temperature=0,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        )  # fmt: skip
    assert resp.usage.prompt_tokens_details.cached_tokens >= 40


def test_sdk_errors_are_typed(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "x", temperature=3)
    assert err.value.body["param"] == "temperature"


def test_the_message_has_a_null_refusal(http):
    body = http.post("/v1/chat/completions", json={"model": MODEL, "max_tokens": 3,
                                                   "messages": [{"role": "user", "content": "Hi"}]}).json()  # fmt: skip
    message = body["choices"][0]["message"]
    assert "refusal" in message and message["refusal"] is None
    assert "tool_calls" not in message and "reasoning_content" not in message
