"""Stage 3, model: step `params` chooses the sampling parameters (the client's, or the complexity estimate's),
then the stage starts generation on the engine. Admission happens here, before any byte of the response is
sent."""

from __future__ import annotations

from typing import Any

from parley.engines.base import Chunk, GenerationRequest, GenerationStream, SamplingParams
from parley.errors import InvalidRequest
from parley.guards.invisible import strip_invisible
from parley.pipeline.complexity import estimate
from parley.pipeline.context import TurnContext
from parley.pipeline.preprocess.limits import asked_max_tokens
from parley.pipeline.stage import BaseStep, TurnStep, run_steps
from parley.pipeline.turn import Delta, Turn
from parley.protocol.openai import ChatCompletionRequest, CompletionRequest
from parley.tools.parser import CallParser
from parley.tools.stream import ToolCallStream

JSON_MAX_TOKENS = 512
# Under a grammar, a small model that starts repeating never closes the string or the object: a light
# repetition penalty (1.1 was enough for SmolLM2-135M inside strings) and DRY (for whole repeated members,
# longer than the penalty's window) let it finish. Only applied when the client set no penalties itself.
JSON_REPETITION_PENALTY = 1.1
JSON_DRY_MULTIPLIER = 0.8


class Params(BaseStep):
    """Step `params`: the sampling parameters. Each is the client's; where the client left it unset, the
    profile's; then, for a profile with `adaptive = true`, the choice learnt from ratings (temperature, top_p
    and the token budget); then the complexity estimate's (docs/pipeline.md). The trace says where each came
    from."""

    name = "params"

    def run(self, turn: Turn, ctx: TurnContext) -> None:
        req = turn.request
        profile = turn.profile.params if turn.profile is not None else None
        room = ctx.engine_required.info.context_window - len(turn.prompt_tokens)
        json_answer = turn.constrained
        decision: dict[str, object] = {}

        def chosen(name: str, asked: object = None) -> object:
            value = asked if asked is not None else getattr(req, name, None)
            if value is None and profile is not None and (value := getattr(profile, name)) is not None:
                decision[f"{name}_from"] = "profile"
            return value

        max_tokens = chosen("max_tokens", asked_max_tokens(turn))
        temperature, top_p = chosen("temperature"), chosen("top_p")
        if max_tokens is None or temperature is None or top_p is None:
            user_text = next((m.content for m in reversed(turn.messages) if m.role == "user"), turn.prompt)
            guess = estimate(user_text)
            decision["complexity"] = {"score": guess.score, "tier": guess.tier, **guess.features}
            budget, guessed_temperature = guess.max_tokens, guess.temperature
            if ctx.tuner is not None and turn.profile is not None and turn.profile.adaptive and not json_answer:
                pick = ctx.tuner.choose(turn.profile.name, guess.tier)
                decision["adaptive"] = pick.detail
                budget, guessed_temperature = pick.max_tokens(guess.max_tokens), pick.temperature
                if top_p is None:
                    top_p = pick.top_p
                    decision["top_p_from"] = "adaptive"
            source = "adaptive" if "adaptive" in decision else "estimate"
            if max_tokens is None:
                max_tokens = min(JSON_MAX_TOKENS if json_answer else budget, room)
                decision["max_tokens_from"] = source
            if temperature is None:
                temperature = 0.2 if json_answer else guessed_temperature
                decision["temperature_from"] = source
        if decision.get("max_tokens_from") == "profile":
            max_tokens = min(int(max_tokens), room)  # type: ignore[call-overload]
        repetition_penalty, dry = chosen("repetition_penalty"), req.dry_multiplier
        presence, frequency = chosen("presence_penalty"), chosen("frequency_penalty")
        client_penalties = any(v is not None for v in (repetition_penalty, dry, frequency, presence))
        if json_answer and not client_penalties:
            repetition_penalty, dry = JSON_REPETITION_PENALTY, JSON_DRY_MULTIPLIER
            decision["penalties_from"] = "json_default"
        top_k, min_p = chosen("top_k"), chosen("min_p")
        turn.params = SamplingParams(
            max_tokens=int(max_tokens),  # type: ignore[call-overload]
            temperature=float(temperature),  # type: ignore[arg-type]
            top_p=float(top_p) if top_p is not None else 1.0,  # type: ignore[arg-type]
            top_k=int(top_k) if top_k is not None and top_k > 0 else 0,  # type: ignore[call-overload, operator]
            min_p=float(min_p) if min_p is not None else 0.0,  # type: ignore[arg-type]
            seed=req.seed,
            presence_penalty=float(presence or 0.0),  # type: ignore[arg-type]
            frequency_penalty=float(frequency or 0.0),  # type: ignore[arg-type]
            repetition_penalty=float(repetition_penalty or 1.0),  # type: ignore[arg-type]
            dry_multiplier=dry or 0.0,
            dry_base=req.dry_base or 1.75,
            dry_allowed_length=req.dry_allowed_length or 2,
            dry_penalty_last_n=req.dry_penalty_last_n if req.dry_penalty_last_n is not None else -1,
            logit_bias={int(k): v for k, v in (req.logit_bias or {}).items()},
            stop=turn.stops,
            ignore_eos=req.ignore_eos,
            grammar=turn.grammar,
            grammar_trigger=turn.grammar_trigger,
            response_format=openai_response_format(turn) if turn.tools is None else None,
            logprobs=asked_logprobs(turn),
            prompt_logprobs=echo_logprobs(turn),
        )
        p = turn.params
        turn.note(
            self.name,
            max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed,
            repetition_penalty=p.repetition_penalty, dry_multiplier=p.dry_multiplier,
            constrained=turn.grammar is not None, **decision,
        )  # fmt: skip


def asked_logprobs(turn: Turn) -> int | None:
    """How many alternatives per token the request wants (0: the chosen token's only); None: no logprobs.
    Chat: `logprobs: true` with `top_logprobs`; completions: `logprobs: k`."""
    req = turn.request
    if isinstance(req, ChatCompletionRequest):
        return (req.top_logprobs or 0) if req.logprobs else None
    return req.logprobs


def openai_tools(turn: Turn) -> dict[str, Any] | None:
    """The request's tools as OpenAI's fields, for an engine with its own tool syntax."""
    tools = turn.tools
    if tools is None:
        return None
    choice: Any = {"type": "function", "function": {"name": tools.function}} if tools.function else tools.choice
    offered = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                 "parameters": t.parameters}} for t in tools.tools]  # fmt: skip
    return {"tools": offered, "tool_choice": choice, "parallel_tool_calls": tools.parallel}


def echo_logprobs(turn: Turn) -> bool:
    """A text completion with `echo` and `logprobs`: the prompt's tokens get theirs too."""
    req = turn.request
    return isinstance(req, CompletionRequest) and req.echo and req.logprobs is not None


def openai_response_format(turn: Turn) -> dict[str, Any] | None:
    """The turn's JSON constraint in OpenAI's `response_format` form, for upstreams that take that."""
    if turn.grammar is None:
        return None
    if turn.json_schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": turn.json_schema, "strict": True}}


MODEL_STEPS: dict[str, TurnStep] = {"params": Params()}


class ModelStage:
    name = "model"

    def __init__(self, steps: list[TurnStep] | None = None) -> None:
        self.steps = steps if steps is not None else list(MODEL_STEPS.values())

    async def open(self, turn: Turn, ctx: TurnContext) -> ModelStream:
        """Decide the parameters (timed as steps of this stage) and admit the request to the engine."""
        run_steps(self.name, self.steps, turn, ctx)
        engine = ctx.engine_required
        assert turn.params is not None
        turn.note(self.name, engine=engine.info.kind, model=engine.info.id)
        turn.route = f"{engine.info.kind}:{engine.info.id}"
        if turn.guard.refusal is not None:  # decided before the model: no compute spent
            turn.note(self.name, skipped="refusal")
            n = len(engine.tokenize(turn.guard.refusal, special=False)) if engine.info.capabilities.chat_template else 0
            return ModelStream(turn, CannedStream(Chunk(turn.guard.refusal, n, "stop")), self.name)
        if turn.adapter is not None and not engine.info.capabilities.adapters:
            raise InvalidRequest(f"The model `{turn.model}` serves no adapters.", param="model")
        if engine.info.capabilities.chat_template:
            request = GenerationRequest(turn.id, turn.params, prompt_tokens=turn.prompt_tokens, adapter=turn.adapter)
        elif turn.kind == "completion":
            request = GenerationRequest(turn.id, turn.params, prompt=turn.prompt, adapter=turn.adapter)
        else:
            messages = [{"role": m.role, "content": m.content, **m.extra} for m in turn.messages]
            request = GenerationRequest(turn.id, turn.params, messages=messages, adapter=turn.adapter,
                                        tools=openai_tools(turn))  # fmt: skip
        stream = await engine.generate(request)
        native = not engine.info.capabilities.chat_template  # the engine parses its own calls into fragments
        if turn.tools is not None and turn.tools.choice != "none" and turn.tool_format is not None and not native:
            schemas = {t.name: t.parameters for t in turn.tools.offered()}
            def noted(parser: CallParser) -> None:
                turn.note(self.name, tool_calls=parser.calls, tool_calls_dropped=len(parser.failed))

            calls = ToolCallStream(stream, CallParser(turn.tool_format, schemas), noted)
            return ModelStream(turn, calls, self.name)
        return ModelStream(turn, stream, self.name)


class CannedStream:
    """An answer decided without the model, as a one-chunk stream."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk: Chunk | None = chunk

    def __aiter__(self) -> CannedStream:
        return self

    async def __anext__(self) -> Chunk:
        if self.chunk is None:
            raise StopAsyncIteration
        chunk, self.chunk = self.chunk, None
        return chunk

    async def stop(self) -> None:
        self.chunk = None

    async def aclose(self) -> None:
        self.chunk = None


class ModelStream:
    """The engine's chunks as deltas; records the engine's counters on the turn. `stop()` and `aclose()`
    always reach the engine, even if iteration never started."""

    def __init__(self, turn: Turn, chunks: GenerationStream | CannedStream, stage: str) -> None:
        self.turn, self.chunks, self.stage = turn, chunks, stage
        self.invisible = 0

    def __aiter__(self) -> ModelStream:
        return self

    async def __anext__(self) -> Delta:
        chunk = await anext(self.chunks)
        if chunk.stats is not None:
            self.turn.usage.cached_tokens = chunk.stats.cached_tokens
            self.turn.timing.queued_s = chunk.stats.queue_s
            if not self.turn.prompt_tokens:  # an engine that took messages counted the prompt itself
                self.turn.usage.prompt_tokens = chunk.stats.prompt_tokens
            self.turn.note(self.stage, cached_prompt_tokens=chunk.stats.cached_tokens)
            if chunk.stats.route is not None:
                self.turn.note(self.stage, upstream=chunk.stats.route)
                self.turn.route += f"@{chunk.stats.route['replica']}"
        if chunk.prompt_logprobs:
            self.turn.prompt_logprobs = list(chunk.prompt_logprobs)
        text, removed = strip_invisible(chunk.text)  # no hidden channel leaves the model stage
        if removed:
            self.invisible += removed
            self.turn.note(self.stage, invisible_removed=self.invisible)
        return Delta(text, chunk.n_tokens, chunk.finish_reason, chunk.reasoning, list(chunk.tool_calls),
                     list(chunk.logprobs))  # fmt: skip

    async def stop(self) -> None:
        await self.chunks.stop()

    async def aclose(self) -> None:
        await self.chunks.aclose()
