"""Stage 3, model: choose the sampling parameters (the client's, or the complexity estimate's) and start
generation on the engine. Admission happens here, before any byte of the response is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

from parley.engines.base import Chunk, GenerationRequest, SamplingParams
from parley.errors import ContextLengthExceeded
from parley.pipeline.complexity import estimate
from parley.pipeline.turn import Delta, Turn
from parley.protocol.openai import ChatCompletionRequest

JSON_MAX_TOKENS = 512
# Under a grammar, a small model that starts repeating never closes the string or the object: a light
# repetition penalty (1.1 was enough for SmolLM2-135M inside strings) and DRY (for whole repeated members,
# longer than the penalty's window) let it finish. Only applied when the client set no penalties itself.
JSON_REPETITION_PENALTY = 1.1
JSON_DRY_MULTIPLIER = 0.8


class ModelStage:
    name = "model"

    async def open(self, turn: Turn) -> ModelStream:
        turn.params = self.decide(turn)
        engine = turn.engine_required
        if turn.refusal is not None:  # decided before the model: no compute spent
            turn.note(self.name, skipped="refusal")
            n = len(engine.tokenize(turn.refusal, special=False))
            return ModelStream(turn, _canned(Chunk(turn.refusal, n, "stop")), self.name)
        chunks = await engine.generate(GenerationRequest(turn.id, turn.prompt_tokens, turn.params))
        return ModelStream(turn, chunks, self.name)

    def decide(self, turn: Turn) -> SamplingParams:
        req = turn.request
        asked = getattr(req, "max_completion_tokens", None) or req.max_tokens
        room = turn.engine_required.info.context_window - len(turn.prompt_tokens)
        if asked is not None and asked > room:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {turn.engine_required.info.context_window} tokens. "
                f"However, you requested {len(turn.prompt_tokens) + asked} tokens "
                f"({len(turn.prompt_tokens)} in the messages, {asked} in the completion).",
                param="max_tokens",
            )
        decision: dict[str, object] = {}
        max_tokens, temperature = asked, req.temperature
        if max_tokens is None or temperature is None:
            user_text = next((m.content for m in reversed(turn.messages) if m.role == "user"), turn.prompt)
            guess = estimate(user_text)
            decision["complexity"] = {"score": guess.score, "tier": guess.tier, **guess.features}
            if max_tokens is None:
                max_tokens = JSON_MAX_TOKENS if turn.grammar else guess.max_tokens
                max_tokens = min(max_tokens, room)
                decision["max_tokens_from"] = "estimate"
            if temperature is None:
                temperature = 0.2 if turn.grammar else guess.temperature
                decision["temperature_from"] = "estimate"
        repetition_penalty, dry = req.repetition_penalty, req.dry_multiplier
        client_penalties = any(v is not None for v in (repetition_penalty, dry, req.frequency_penalty,
                                                        req.presence_penalty))  # fmt: skip
        if turn.grammar and not client_penalties:
            repetition_penalty, dry = JSON_REPETITION_PENALTY, JSON_DRY_MULTIPLIER
            decision["penalties_from"] = "json_default"
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=req.top_p if req.top_p is not None else 1.0,
            top_k=req.top_k if req.top_k is not None and req.top_k > 0 else 0,
            min_p=req.min_p if req.min_p is not None else 0.0,
            seed=req.seed,
            presence_penalty=req.presence_penalty or 0.0,
            frequency_penalty=req.frequency_penalty or 0.0,
            repetition_penalty=repetition_penalty or 1.0,
            dry_multiplier=dry or 0.0,
            dry_base=req.dry_base or 1.75,
            dry_allowed_length=req.dry_allowed_length or 2,
            dry_penalty_last_n=req.dry_penalty_last_n if req.dry_penalty_last_n is not None else -1,
            logit_bias={int(k): v for k, v in (req.logit_bias or {}).items()},
            stop=turn.stops,
            ignore_eos=req.ignore_eos,
            grammar=turn.grammar,
        )
        turn.note(
            self.name,
            engine=turn.engine_required.status().get("engine", "unknown"),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            repetition_penalty=params.repetition_penalty,
            dry_multiplier=params.dry_multiplier,
            constrained=turn.grammar is not None,
            chat_request=isinstance(req, ChatCompletionRequest),
            **decision,
        )
        return params



async def _canned(chunk: Chunk) -> AsyncIterator[Chunk]:
    yield chunk


class ModelStream:
    """The engine's chunks as deltas; records the engine's counters on the turn. `aclose()` always
    reaches the engine, even if iteration never started."""

    def __init__(self, turn: Turn, chunks: AsyncIterator[Chunk], stage: str) -> None:
        self.turn, self.chunks, self.stage = turn, chunks, stage

    def __aiter__(self) -> ModelStream:
        return self

    async def __anext__(self) -> Delta:
        chunk = await anext(self.chunks)
        if chunk.stats is not None:
            self.turn.usage.cached_tokens = chunk.stats.cached_tokens
            self.turn.note(self.stage, cached_prompt_tokens=chunk.stats.cached_tokens)
        return Delta(chunk.text, chunk.n_tokens, chunk.finish_reason)

    async def aclose(self) -> None:
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
