"""Pipeline tests on the scripted engine: every step and the runner, in milliseconds, without a model."""

from __future__ import annotations

import asyncio

import pytest

from parley.config import Settings
from parley.engines.scripted import ScriptedEngine
from parley.errors import ModelNotFound
from parley.pipeline.runner import Pipeline
from parley.pipeline.turn import Turn
from parley.protocol.openai import ChatCompletionRequest, CompletionRequest

MODEL = "scripted"


@pytest.fixture(scope="session")
def guards():
    from parley.guards.service import Guards

    return Guards(classifier=False)  # rules, PII and secret scanners; no embedding model to load


def make_pipeline(engine: ScriptedEngine, guards=None, profiles=None, **settings) -> Pipeline:
    def find(name: str):
        if name != engine.info.id:
            raise ModelNotFound(f"The model `{name}` does not exist.", param="model")
        return engine, None

    return Pipeline(find, Settings(**settings), lambda: guards, profiles)


def chat(*messages, trace=True, **fields) -> Turn:
    msgs = [{"role": "user", "content": m} if isinstance(m, str) else m for m in messages] or ["Hi"]
    fields.setdefault("model", MODEL)
    return Turn(kind="chat", request=ChatCompletionRequest(messages=msgs, **fields), want_trace=trace)


def completion(prompt, **fields) -> Turn:
    return Turn(kind="completion", request=CompletionRequest(model=MODEL, prompt=prompt, **fields), want_trace=True)


def answer(pipeline: Pipeline, turn: Turn):
    async def main():
        run = await pipeline.start(turn)
        return await run.response()

    return asyncio.run(main())


def stream(pipeline: Pipeline, turn: Turn):
    async def main():
        run = await pipeline.start(turn)
        return [chunk async for chunk in run.chunks()]

    return asyncio.run(main())


def step(turn: Turn, name: str) -> dict:
    """The trace detail a step wrote."""
    for entry in turn.trace:
        for s in entry.steps:
            if s.step == name:
                return s.detail
    raise KeyError(name)
