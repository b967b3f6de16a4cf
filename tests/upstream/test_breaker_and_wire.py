"""The circuit breaker's states on a clock the test moves, the replicas' weighted turns, and the request body
each upstream flavor gets (the structured-output field it takes, or a clear refusal)."""

from __future__ import annotations

import json

import pytest

from parley.config import UpstreamSpec
from parley.engines.base import AdapterRef, GenerationRequest, SamplingParams
from parley.engines.upstream.breaker import CircuitBreaker
from parley.engines.upstream.replicas import ReplicaSet
from parley.engines.upstream.wire import StreamState, final_chunk, parse_event, request_body
from parley.errors import InvalidRequest


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_failures_in_a_row_and_lets_one_trial_through():
    clock = Clock()
    b = CircuitBreaker(failures=2, open_seconds=10, clock=clock)
    b.failure()
    b.success()  # a success in between: failures must be in a row
    b.failure()
    assert b.state == "closed" and b.acquire()
    b.failure()
    assert b.state == "open" and not b.acquire() and b.retry_after() == 10
    clock.now = 10
    assert b.state == "half_open" and b.acquire() and not b.acquire()  # one trial at a time
    b.failure()  # the trial failed: a full period again
    assert b.state == "open" and b.retry_after() == 10
    clock.now = 20
    assert b.acquire()
    b.release()  # the trial's client left: no verdict, another trial may go
    assert b.acquire()
    b.success()
    assert b.state == "closed" and b.failures == 0


def spec(**kw) -> UpstreamSpec:
    return UpstreamSpec(name="big", replicas=[{"url": "http://a:8000/v1"}], **kw)


def test_replicas_take_turns_by_weight_and_an_open_circuit_is_skipped():
    s = UpstreamSpec(name="big", replicas=[{"url": "http://a/v1", "weight": 3}, {"url": "http://b/v1", "weight": 1}],
                     breaker_failures=1)  # fmt: skip
    replicas = ReplicaSet(s, {})
    picks = [replicas.pick(set()).url for _ in range(8)]  # type: ignore[union-attr]
    assert picks.count("http://a/v1") == 6 and picks.count("http://b/v1") == 2
    replicas.replicas[0].breaker.failure()
    assert {replicas.pick(set()).url for _ in range(4)} == {"http://b/v1"}  # type: ignore[union-attr]
    assert replicas.pick({"http://b/v1"}) is None
    replicas.replicas[1].healthy = False
    assert replicas.pick(set()) is None and replicas.retry_after() >= 1


def request(**params) -> GenerationRequest:
    return GenerationRequest("r1", SamplingParams(max_tokens=8, **params), messages=[{"role": "user", "content": "x"}])


def test_each_flavor_gets_the_constraint_in_its_own_field():
    schema_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    constrained = request(grammar="root ::= \"{}\"", response_format=schema_format, top_k=5, repetition_penalty=1.1)
    llama = request_body(spec(flavor="llamacpp"), constrained)
    assert llama["grammar"] == "root ::= \"{}\"" and "response_format" not in llama
    assert llama["top_k"] == 5 and llama["repeat_penalty"] == 1.1 and llama["stream"] is True
    vllm = request_body(spec(flavor="vllm", model="org/Big"), constrained)
    assert vllm["response_format"] == schema_format and "grammar" not in vllm
    assert vllm["model"] == "org/Big" and vllm["repetition_penalty"] == 1.1
    hosted = request_body(spec(flavor="openai"), constrained)
    assert hosted["response_format"] == schema_format and "top_k" not in hosted
    with pytest.raises(InvalidRequest):  # a bare grammar has no OpenAI form
        request_body(spec(flavor="openai"), request(grammar="root ::= \"x\""))
    assert request_body(spec(flavor="vllm"), request(grammar="root ::= \"x\""))["structured_outputs"] == {
        "grammar": "root ::= \"x\""
    }
    adapted = GenerationRequest("r2", SamplingParams(max_tokens=4), messages=[], adapter=AdapterRef("faq"))
    assert request_body(spec(flavor="vllm", adapters=True), adapted)["model"] == "faq"


def event(obj: dict) -> str:
    return "data: " + json.dumps(obj)


def test_stream_events_become_chunks_and_the_upstreams_usage_wins():
    state = StreamState()
    assert parse_event(event({"choices": [{"delta": {"role": "assistant"}}]}), state) is None
    first = parse_event(event({"choices": [{"delta": {"content": "Hel"}}]}), state)
    assert first is not None and first.text == "Hel" and first.n_tokens == 1
    call = parse_event(event({"choices": [{"delta": {"tool_calls": [
        {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{\"a\""}}]}}]}), state)  # fmt: skip
    assert call is not None and call.tool_calls[0].name == "f" and call.tool_calls[0].arguments == "{\"a\""
    assert parse_event(event({"choices": [{"delta": {}, "finish_reason": "length"}]}), state) is None
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}
    assert parse_event(event({"choices": [], "usage": usage}), state) is None
    assert parse_event("data: [DONE]", state) is None and state.done
    last = final_chunk(state)
    assert last.finish_reason == "length" and last.n_tokens == 2  # the usage counts 3; one chunk was seen
    assert last.stats is not None and (last.stats.prompt_tokens, last.stats.cached_tokens) == (9, 4)


def test_an_upstream_without_structured_output_says_so():
    from parley.engines.upstream.engine import UpstreamEngine

    closed_port = UpstreamSpec(name="plain", replicas=[{"url": "http://127.0.0.1:9/v1"}], structured_output=False)
    engine = UpstreamEngine(closed_port, start_health=False)
    assert engine.info.capabilities.grammar is False and engine.info.capabilities.chat_template is False
    assert engine.info.context_window == 4096  # nothing answered: the default stands
    engine.close()
