"""The pipeline runner: drives a turn through the six stages and assembles the trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from parley.config import Settings
from parley.engines.base import Engine
from parley.guards.service import Guards
from parley.pipeline.final import FinalStage
from parley.pipeline.input import InputStage
from parley.pipeline.model import ModelStage, ModelStream
from parley.pipeline.output import OutputStage
from parley.pipeline.postprocess import PostprocessStage
from parley.pipeline.preprocess import PreprocessStage
from parley.pipeline.stage import StageClock, record, record_streams, run_timed
from parley.pipeline.turn import Delta, Turn
from parley.protocol.openai import ChatCompletion, ChatCompletionChunk, Completion


class Pipeline:
    def __init__(
        self,
        find_engine: Callable[[str], Engine],
        settings: Settings,
        find_guards: Callable[[], Guards | None] = lambda: None,
    ) -> None:
        self.find_guards = find_guards
        self.input = InputStage(
            find_engine, max_messages=settings.max_messages, max_message_chars=settings.max_message_chars
        )
        self.preprocess = PreprocessStage()
        self.model = ModelStage()
        self.output = OutputStage()
        self.postprocess = PostprocessStage()
        self.final = FinalStage()

    async def start(self, turn: Turn) -> Run:
        """Run the stages up to admission. Bad input and a full engine raise here, before any response."""
        turn.guards = self.find_guards()
        await asyncio.to_thread(self._prepare, turn)  # scanning and tokenising stay off the event loop
        model_clock = StageClock(self.model.name)
        start = time.perf_counter()
        stream = await self.model.open(turn)
        model_clock.inclusive += time.perf_counter() - start
        return Run(self, turn, stream, model_clock)

    def _prepare(self, turn: Turn) -> None:
        run_timed(self.input, turn)
        run_timed(self.preprocess, turn)


class Run:
    """A started turn: consume it whole (`response`) or as OpenAI stream chunks (`chunks`), not both."""

    def __init__(self, pipeline: Pipeline, turn: Turn, stream: ModelStream, model_clock: StageClock):
        self.pipeline, self.turn, self.source = pipeline, turn, stream
        self.clocks = [model_clock, StageClock(pipeline.output.name), StageClock(pipeline.postprocess.name)]
        deltas = model_clock.wrap(stream)
        deltas = self.clocks[1].wrap(pipeline.output.process(turn, deltas))
        self.deltas: AsyncGenerator[Delta, None] = self.clocks[2].wrap(pipeline.postprocess.process(turn, deltas))
        self.final_seconds = 0.0

    async def response(self) -> ChatCompletion | Completion:
        parts = []
        try:
            async for delta in self.deltas:
                parts.append(delta.text)
        finally:
            await self.aclose()
        start = time.perf_counter()
        self.turn.text = "".join(parts)
        self._close_trace(time.perf_counter() - start)
        return self.pipeline.final.response(self.turn)

    async def chunks(self) -> AsyncIterator[ChatCompletionChunk | Completion]:
        turn, final = self.turn, self.pipeline.final
        include_usage = bool(turn.request.stream_options and turn.request.stream_options.include_usage)
        role_sent, parts = False, []
        try:
            async for delta in self.deltas:
                start = time.perf_counter()
                out: list[ChatCompletionChunk | Completion] = []
                if delta.text:
                    parts.append(delta.text)
                    out.append(final.chunk(turn, delta.text, role=not role_sent))  # first token rides with role
                    role_sent = True
                if delta.finish_reason is not None:
                    turn.text = "".join(parts)
                    if not role_sent and turn.kind == "chat":
                        out.append(final.chunk(turn, "", role=True))
                    out.append(final.chunk(turn, None, finish_reason=delta.finish_reason))
                    if include_usage:
                        out.append(final.usage_chunk(turn))
                    self._close_trace(self.final_seconds + time.perf_counter() - start)
                    if turn.want_trace:
                        out[-1].parley_trace = turn.trace
                else:
                    self.final_seconds += time.perf_counter() - start
                for chunk in out:
                    yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the turn: the stages' finally blocks run and the engine frees the request's slot."""
        await self.deltas.aclose()
        await self.source.aclose()

    def _close_trace(self, final_seconds: float) -> None:
        record_streams(self.turn, self.clocks)
        self.turn.note(self.pipeline.final.name, chars=len(self.turn.text), stream=self.turn.request.stream)
        record(self.turn, self.pipeline.final.name, final_seconds)
