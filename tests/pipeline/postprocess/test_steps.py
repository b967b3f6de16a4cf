"""Each post-processing step through the pipeline, whole and streamed, on the scripted engine."""

from __future__ import annotations

import pytest

from parley.engines.base import Chunk
from parley.engines.scripted import ScriptedEngine, chunks_of
from tests.pipeline.conftest import answer, chat, completion, make_pipeline, step, stream

SECRET = "sk-proj-Zq8Lm3Np7Rt2Vx9Ka4Hd6Jf1Wc5Ys0"


def both(text, guards=None, finish="stop", **fields):
    """(whole answer, streamed text, streamed finish reason, engine) for one scripted reply."""
    engine = ScriptedEngine([chunks_of(text, finish), chunks_of(text, finish)])
    whole = answer(make_pipeline(engine, guards), chat("q", **fields))
    chunks = stream(make_pipeline(engine, guards), chat("q", stream=True, **fields))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return whole, streamed, chunks[-1].choices[0].finish_reason, engine


def test_leaked_turn_marker_ends_the_answer_and_stops_the_engine():
    whole, streamed, finish, engine = both("Hello there.<|im_end|>\n<|im_start|>user\nmore")
    assert whole.choices[0].message.content == streamed == "Hello there."
    assert whole.choices[0].finish_reason == finish == "stop"
    assert [s.ended for s in engine.streams] == ["stop", "stop"]  # ended by choice, not cancelled


def test_html_is_sanitised_outside_code(guards):
    text = 'Hi <img src=x onerror="alert(1)"> there.\n```html\n<script>x()</script>\n```\n'
    whole, streamed, _, _ = both(text, guards)
    content = whole.choices[0].message.content
    assert content == streamed
    assert "onerror" not in content and "<script>x()</script>" in content


def test_output_guard_redacts_a_secret(guards):
    whole, streamed, _, _ = both(f"Your key is {SECRET} ok.", guards)
    assert whole.choices[0].message.content == streamed
    assert SECRET not in streamed and "[OPENAI_KEY]" in streamed


def test_output_guard_cuts_a_canary_leak_with_content_filter(guards):
    engine = ScriptedEngine(respond=lambda req: chunks_of("The marker is " + canary[0] + " indeed."))
    canary: list[str] = []
    pipeline = make_pipeline(engine, guards)
    turn = chat({"role": "system", "content": "Secret helpdesk rules."}, "q")
    canary.append(guards.canary_for("Secret helpdesk rules."))
    resp = answer(pipeline, turn)
    assert resp.choices[0].finish_reason == "content_filter"
    assert canary[0] not in resp.choices[0].message.content
    assert step(turn, "output_guard")["blocked"] == "leak:canary"


def test_a_loop_is_cut_to_one_copy_and_generation_stops():
    whole, streamed, _, engine = both("Intro. " + "The cat sat on the mat. " * 8)
    assert whole.choices[0].message.content == streamed == "Intro. The cat sat on the mat."
    assert engine.streams[0].ended == "stop"


def test_a_sentence_cut_by_the_token_limit_is_trimmed():
    text = "Paris is the capital of France. It is known for the Eiffel"
    whole, streamed, finish, _ = both(text, finish="length", max_tokens=12)  # 12 pieces: the budget
    assert whole.choices[0].message.content == streamed == "Paris is the capital of France."
    assert finish == "length"


@pytest.mark.parametrize(("fence", "closer"), [("```", "```"), ("~~~", "~~~"), ("````", "````")])
def test_an_open_fence_is_closed_with_its_own_kind(fence, closer):
    whole, streamed, _, _ = both(f"Code:\n{fence}python\nprint(1)\n```x\n")
    content = whole.choices[0].message.content
    assert content == streamed
    assert content.endswith(f"```x\n{closer}")  # "```x" has an info string: it closes nothing


def test_json_answers_get_only_the_token_stripper_and_the_guard(guards):
    engine = ScriptedEngine([chunks_of('{"a": "b"} {"a": "b"} {"a": "b"} {"a": "b"}')])
    turn = chat("q", response_format={"type": "json_object"})
    answer(make_pipeline(engine, guards), turn)
    post = next(e for e in turn.trace if e.stage == "postprocess")
    assert [s.step for s in post.steps] == ["leaked_tokens", "output_guard"]


def test_completions_are_not_trimmed_or_fenced():
    engine = ScriptedEngine([chunks_of("```\ncontinues mid sent", "length")])
    turn = completion("Start", max_tokens=30)
    resp = answer(make_pipeline(engine), turn)
    assert resp.choices[0].text == "```\ncontinues mid sent"
    post = next(e for e in turn.trace if e.stage == "postprocess")
    assert [s.step for s in post.steps] == ["leaked_tokens", "repetition"]


def test_the_step_list_comes_from_settings():
    engine = ScriptedEngine([chunks_of("Loop. " * 40)])
    turn = chat("q")
    resp = answer(make_pipeline(engine, postprocess_steps=["leaked_tokens"]), turn)
    assert resp.choices[0].message.content == "Loop. " * 40  # no loop cutter in this pipeline
    with pytest.raises(ValueError, match="unknown postprocess step"):
        make_pipeline(engine, postprocess_steps=["leaked_tokens", "spellcheck"])


def test_reasoning_and_tool_calls_pass_the_filters_untouched():
    from parley.engines.base import ToolCallFragment

    script = [
        Chunk("", 1, reasoning="Think <|im_end|> first. "),
        Chunk("", 1, tool_calls=[ToolCallFragment(0, "call_1", "get_weather", '{"city": ')]),
        Chunk("", 1, tool_calls=[ToolCallFragment(0, arguments='"Paris"}')]),
        Chunk("", 0, "tool_calls"),
    ]
    engine = ScriptedEngine([list(script), list(script)])
    resp = answer(make_pipeline(engine), chat("weather?"))
    message = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    assert message.content is None and message.reasoning_content == "Think <|im_end|> first. "
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_1", "get_weather", '{"city": "Paris"}')
    ]
    chunks = stream(make_pipeline(engine), chat("weather?", stream=True))
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0][0].id == "call_1" and calls[0][0].function.name == "get_weather"
    assert calls[1][0].id is None and calls[1][0].function.name is None
    assert "".join(c[0].function.arguments for c in calls) == '{"city": "Paris"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
