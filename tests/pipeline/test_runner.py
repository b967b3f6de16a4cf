"""The runner: the six stages and their steps in the trace, whole and streamed answers, and the turn-end hook
firing exactly once whatever the turn's end."""

from __future__ import annotations

import asyncio

import pytest

from parley.engines.base import AdapterRef
from parley.engines.scripted import ScriptedEngine, chunks_of
from parley.errors import EngineFailed, EngineOverloaded, GuardsUnavailable, InvalidRequest, ModelNotFound
from tests.pipeline.conftest import answer, chat, make_pipeline, stream

STAGES = ["input", "preprocess", "model", "output", "postprocess", "final"]


def observed(pipeline):
    ends = []

    async def observer(turn, ctx):
        ends.append((turn.outcome, type(turn.error).__name__ if turn.error else None, turn.text, turn.usage.total))

    pipeline.turn_end.add(observer)
    return ends


def test_the_trace_lists_six_stages_and_each_steps_entry_in_order(guards):
    engine = ScriptedEngine([chunks_of("Hello there.")])
    turn = chat("Hi")
    resp = answer(make_pipeline(engine, guards), turn)
    trace = resp.parley_trace
    assert [t.stage for t in trace] == STAGES
    steps = {t.stage: [s.step for s in t.steps] for t in trace}
    assert steps["preprocess"] == ["normalize", "guard_input", "render", "limits"]  # response_format: n/a
    assert steps["model"] == ["params"]
    assert steps["postprocess"] == ["leaked_tokens", "html", "output_guard", "repetition", "truncation", "fences"]
    assert all(s.duration_ms >= 0 for t in trace for s in t.steps)
    assert trace[3].detail["completion_tokens"] == resp.usage.completion_tokens == 2


def test_streamed_chunks_join_to_the_whole_answer():
    text = "Alpha beta. Gamma delta epsilon. Zeta"
    engine = ScriptedEngine([chunks_of(text, "length"), chunks_of(text, "length")])
    whole = answer(make_pipeline(engine), chat("q", max_tokens=7))
    chunks = stream(make_pipeline(engine), chat("q", max_tokens=7, stream=True,
                                                stream_options={"include_usage": True}))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [t.stage for t in chunks[-1].parley_trace] == STAGES  # on the last chunk: the usage one


def test_the_turn_ends_once_as_finished_with_its_text_and_usage():
    engine = ScriptedEngine([chunks_of("One two."), chunks_of("One two.")])
    pipeline = make_pipeline(engine)
    ends = observed(pipeline)
    answer(pipeline, chat("q"))
    stream(pipeline, chat("q", stream=True))
    prompt = len(engine.requests[0].prompt_tokens)
    assert ends == [("finished", None, "One two.", prompt + 2)] * 2


@pytest.mark.parametrize(
    ("make_turn", "engine_kw", "error"),
    [
        (lambda: chat("q", model="nope"), {}, ModelNotFound),
        (lambda: chat("q", n=2), {}, InvalidRequest),
        (lambda: chat("q"), {"admit": lambda r: (_ for _ in ()).throw(EngineOverloaded("full"))}, EngineOverloaded),
    ],
    ids=["unknown-model", "bad-request", "engine-full"],
)
def test_a_turn_refused_before_generation_ends_as_failed(make_turn, engine_kw, error):
    pipeline = make_pipeline(ScriptedEngine(**engine_kw))
    ends = observed(pipeline)
    turn = make_turn()
    with pytest.raises(error):
        answer(pipeline, turn)
    assert ends == [("failed", error.__name__, "", 0)]


def test_a_turn_whose_engine_fails_mid_stream_ends_as_failed():
    engine = ScriptedEngine([EngineFailed("boom"), EngineFailed("boom")])
    pipeline = make_pipeline(engine)
    ends = observed(pipeline)
    with pytest.raises(EngineFailed):
        answer(pipeline, chat("q"))
    with pytest.raises(EngineFailed):
        stream(pipeline, chat("q", stream=True))
    assert [e[:2] for e in ends] == [("failed", "EngineFailed")] * 2


def test_a_turn_closed_before_its_end_is_cancelled_and_the_engine_told():
    engine = ScriptedEngine([chunks_of("a b c d e f g h")])
    pipeline = make_pipeline(engine)
    ends = observed(pipeline)

    async def main():
        run = await pipeline.start(chat("q", stream=True))
        chunks = run.chunks()
        await anext(chunks)
        await chunks.aclose()  # the client went away
        await run.aclose()  # the server's own close after the response: no second end

    asyncio.run(main())
    assert [e[0] for e in ends] == ["cancelled"]
    assert engine.streams[0].ended == "cancelled"


def test_a_failing_observer_is_counted_and_changes_nothing():
    engine = ScriptedEngine([chunks_of("Fine.")])
    pipeline = make_pipeline(engine)

    async def broken(turn, ctx):
        raise RuntimeError("observer bug")

    pipeline.turn_end.add(broken)
    ends = observed(pipeline)
    resp = answer(pipeline, chat("q"))
    assert resp.choices[0].message.content == "Fine."
    assert pipeline.turn_end.failures == 1 and ends[0][0] == "finished"


def test_an_adapter_needs_an_engine_that_serves_adapters():
    from parley.config import Settings
    from parley.pipeline.runner import Pipeline

    engine = ScriptedEngine()
    pipeline = Pipeline(lambda name: (engine, AdapterRef("support-v2")), Settings())
    with pytest.raises(InvalidRequest) as err:
        answer(pipeline, chat("q", model="support-v2"))
    assert err.value.param == "model" and engine.requests == []


def test_an_adapter_named_as_the_model_reaches_the_engine_and_names_the_answer():
    from parley.config import Settings
    from parley.engines.base import Capabilities
    from parley.pipeline.runner import Pipeline

    engine = ScriptedEngine([chunks_of("tuned")], capabilities=Capabilities(adapters=True))
    pipeline = Pipeline(lambda name: (engine, AdapterRef("support-v2", 0.5, "v1")), Settings())
    resp = answer(pipeline, chat("q", model="support-v2"))
    assert engine.requests[0].adapter == AdapterRef("support-v2", 0.5, "v1")
    assert resp.model == "support-v2"


def test_the_engine_kind_comes_from_its_info_not_from_a_status_call_per_request():
    engine = ScriptedEngine([chunks_of("ok")])
    turn = chat("q")
    answer(make_pipeline(engine), turn)
    assert engine.status_calls == 0
    assert next(e for e in turn.trace if e.stage == "model").detail["engine"] == "scripted"


def test_guards_that_are_not_ready_refuse_with_503_guards_unavailable():
    from parley.config import Settings
    from parley.guards.service import GuardsHolder
    from parley.pipeline.runner import Pipeline

    holder = GuardsHolder(enabled=True, policy="")  # not loaded yet
    engine = ScriptedEngine()
    pipeline = Pipeline(lambda name: (engine, None), Settings(), holder.get)
    ends = observed(pipeline)
    with pytest.raises(GuardsUnavailable) as err:
        answer(pipeline, chat("q"))
    assert err.value.status == 503 and err.value.code == "guards_unavailable"
    assert err.value.headers["Retry-After"] == "2"
    assert ends == [("failed", "GuardsUnavailable", "", 0)] and engine.requests == []


def test_a_reading_deferred_to_the_first_token_is_read_at_the_end_when_no_token_came():
    """A guard reading waits for the answer's first token (GuardState.start_readings); a turn that produced none
    still gets it read when it settles, and one cancelled before it started never runs."""
    from concurrent.futures import Future

    from parley.pipeline.preprocess.guard_input import settle
    from parley.pipeline.turn import Deferred

    began = []

    def begin():
        began.append(1)
        done: Future = Future()
        done.set_result([])
        return done

    turn = chat("Hi")
    reading = Deferred(begin)
    turn.guard.reading = [(0, "user", None, reading)]
    assert not reading.started() and began == []
    asyncio.run(settle(turn))
    assert began == [1] and reading.started() and turn.guard.reading == []
    assert "unfinished" not in str(turn.notes.get("guard_input"))
    cancelled = Deferred(begin)
    cancelled.cancel()
    turn.guard.reading = [(0, "user", None, cancelled)]
    asyncio.run(settle(turn))
    assert began == [1] and cancelled.start().cancelled()
    assert turn.notes["guard_input"]["verdicts"] == [{"message": 0, "role": "user", "classifier": "unfinished"}]
