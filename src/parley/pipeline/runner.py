"""The pipeline runner: drives a turn through the six stages, assembles the trace, and fires the turn-end hook
exactly once whatever the turn's end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING

from parley.config import Settings
from parley.pipeline.context import ResolveModel, TurnContext
from parley.pipeline.final import FinalStage, echo_prefix, joined
from parley.pipeline.hooks import TurnEndHook
from parley.pipeline.input import InputStage
from parley.pipeline.model import MODEL_STEPS, ModelStage, ModelStream
from parley.pipeline.output import OutputStage
from parley.pipeline.postprocess import POSTPROCESS, PostprocessStage
from parley.pipeline.preprocess import PREPROCESS
from parley.pipeline.preprocess.guard_input import settle
from parley.pipeline.stage import StageClock, record_streams, run_stage, select
from parley.pipeline.turn import Delta, Outcome, Turn
from parley.protocol.openai import ChatCompletion, ChatCompletionChunk, Completion

if TYPE_CHECKING:
    from parley.guards.service import Guards
    from parley.params.tuner import Tuner
    from parley.profiles import Profiles
    from parley.store.keys import ApiKey


class Pipeline:
    """The stages, each with its steps as configured (`Settings.preprocess_steps`, `postprocess_steps`)."""

    def __init__(
        self,
        resolve: ResolveModel,
        settings: Settings,
        find_guards: Callable[[], Guards | None] = lambda: None,
        profiles: Profiles | None = None,
        tuner: Tuner | None = None,
    ) -> None:
        self.resolve = resolve
        self.find_guards = find_guards
        self.profiles, self.tuner = profiles, tuner
        self.input = InputStage(max_messages=settings.max_messages, max_message_chars=settings.max_message_chars)
        self.preprocess = select(settings.preprocess_steps, PREPROCESS, "preprocess")
        self.model = ModelStage(list(MODEL_STEPS.values()))
        self.output = OutputStage()
        self.postprocess = PostprocessStage(select(settings.postprocess_steps, POSTPROCESS, "postprocess"), POSTPROCESS)
        self.final = FinalStage()
        self.turn_end = TurnEndHook()

    async def start(self, turn: Turn, key: ApiKey | None = None) -> Run:
        """Run the stages up to admission. Bad input and a full engine raise here, before any response; the
        turn then ends as failed (the turn-end hook runs) before the error propagates."""
        ctx = TurnContext(self.resolve, key=key, profiles=self.profiles, tuner=self.tuner)
        try:
            await asyncio.to_thread(self._prepare, turn, ctx)  # scanning and tokenising stay off the event loop
            model_clock = StageClock(self.model.name)
            start = time.perf_counter()
            stream = await self.model.open(turn, ctx)
            model_clock.add(start, time.perf_counter())
        except BaseException as exc:
            await self.end(turn, ctx, "failed" if isinstance(exc, Exception) else "cancelled", exc)
            raise
        ctx.stop_generation = stream.stop
        return Run(self, turn, ctx, stream, model_clock)

    async def prepare(self, turn: Turn, key: ApiKey | None = None, *, until: str | None = None) -> TurnContext:
        """Input and preprocessing only (up to and including step `until`): the prompt as the model would see
        it, as `/tokenize` reports it. Not a turn that is answered: the turn-end hook does not run."""
        ctx = TurnContext(self.resolve, key=key, profiles=self.profiles, tuner=self.tuner)
        await asyncio.to_thread(self._prepare, turn, ctx, until)
        for *_, reading in turn.guard.reading:  # nothing will read their verdicts
            reading.cancel()
        return ctx

    def _prepare(self, turn: Turn, ctx: TurnContext, until: str | None = None) -> None:
        start = time.perf_counter()
        try:
            self.input.run(turn, ctx)  # the model first: an unknown or broken one is the error to report
        finally:
            end = time.perf_counter()
            turn.record(self.input.name, end - start, (start, end))
        ctx.guards = self.find_guards()  # no request is served unguarded: 503 while they load
        steps, names = self.preprocess, [s.name for s in self.preprocess]
        if until in names:
            steps = steps[: names.index(until) + 1]
        run_stage("preprocess", steps, turn, ctx)

    async def end(self, turn: Turn, ctx: TurnContext, outcome: Outcome, error: BaseException | None = None) -> None:
        """End the turn once (later calls do nothing) and run the turn-end observers."""
        if turn.outcome is not None:
            return
        await settle(turn, wait=0)  # an answer that ended early: the verdicts already read, without waiting
        turn.outcome, turn.error = outcome, error
        turn.timing.ended = time.perf_counter()
        await self.turn_end.fire(turn, ctx)


class Run:
    """A started turn: consume it whole (`response`) or as OpenAI stream chunks (`chunks`), not both."""

    def __init__(self, pipeline: Pipeline, turn: Turn, ctx: TurnContext, stream: ModelStream, clock: StageClock):
        self.pipeline, self.turn, self.ctx, self.source = pipeline, turn, ctx, stream
        self.clocks = [clock, StageClock(pipeline.output.name), StageClock(pipeline.postprocess.name)]
        deltas = clock.wrap(stream)
        deltas = self.clocks[1].wrap(pipeline.output.process(turn, deltas))
        post = pipeline.postprocess.process(turn, ctx, deltas)
        self.deltas: AsyncGenerator[Delta, None] = self.clocks[2].wrap(post)
        self.final_seconds = 0.0
        self._finished = False
        self._error: BaseException | None = None

    async def response(self) -> ChatCompletion | Completion:
        parts = []
        try:
            async for delta in self.deltas:
                parts.append(delta.text)
        except Exception as exc:
            self._error = exc
            raise
        else:
            waited = await settle(self.turn)
            start = time.perf_counter()
            self.turn.text = "".join(parts)
            self._close_trace(time.perf_counter() - start, waited)
            self._finished = True
        finally:
            await self.aclose()  # the turn ends here: observers see the final text and trace
        return self.pipeline.final.response(self.turn)

    async def chunks(self) -> AsyncIterator[ChatCompletionChunk | Completion]:
        turn, final = self.turn, self.pipeline.final
        include_usage = bool(turn.request.stream_options and turn.request.stream_options.include_usage)
        role_sent, parts, waited = False, [], 0.0
        echo = echo_prefix(turn)
        offset = len(echo)  # where the next logprobs' tokens start, in the completion's text
        try:
            async for delta in self.deltas:
                if delta.finish_reason is not None:
                    waited = await settle(turn)  # the input's verdicts, read while the model answered, join the trace
                start = time.perf_counter()
                out: list[ChatCompletionChunk | Completion] = []
                logprobs = delta.logprobs
                if not role_sent and echo and turn.prompt_logprobs:  # the echoed prompt's tokens come first
                    logprobs = turn.prompt_logprobs + logprobs
                    offset -= len(joined(turn.prompt_logprobs))
                if delta.text or delta.reasoning or delta.tool_calls or logprobs:
                    parts.append(delta.text)
                    text = (echo if not role_sent else "") + delta.text
                    out.append(final.chunk(turn, text or None, role=not role_sent, reasoning=delta.reasoning,
                                           tool_calls=delta.tool_calls, logprobs=logprobs, offset=offset))  # fmt: skip
                    role_sent = True  # the first token rides with the role (and a completion's echoed prompt)
                    offset += len(joined(logprobs))
                if delta.finish_reason is not None:
                    turn.text = "".join(parts)
                    if not role_sent and (turn.kind == "chat" or echo):
                        out.append(final.chunk(turn, echo if turn.kind == "completion" else "", role=True))
                    out.append(final.chunk(turn, None, finish_reason=delta.finish_reason))
                    if include_usage:
                        out.append(final.usage_chunk(turn))
                    self._close_trace(self.final_seconds + time.perf_counter() - start, waited)
                    if turn.want_trace:
                        out[-1].parley_trace = turn.trace
                    self._finished = True
                else:
                    self.final_seconds += time.perf_counter() - start
                for chunk in out:
                    yield chunk
        except Exception as exc:
            self._error = exc
            raise
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the turn: the stages' finally blocks run, the engine frees the request's slot, and the turn
        ends (finished, failed or cancelled) if it had not."""
        try:
            await self.deltas.aclose()
            await self.source.aclose()
        finally:
            if self._finished or self._error is not None:
                await self._end()
            else:
                await self.pipeline.end(self.turn, self.ctx, "cancelled")

    async def _end(self) -> None:
        outcome: Outcome = "failed" if self._error is not None else "finished"
        await self.pipeline.end(self.turn, self.ctx, outcome, self._error)

    def _close_trace(self, final_seconds: float, waited: float) -> None:
        """`waited`: seconds the answer's end waited for the input guard's readings."""
        record_streams(self.turn, self.clocks)
        self.turn.note(self.pipeline.final.name, chars=len(self.turn.text), stream=self.turn.request.stream)
        if waited:
            self.turn.note(self.pipeline.final.name, waited_for_guard_ms=round(waited * 1000, 3))
        self.turn.record(self.pipeline.final.name, final_seconds)
