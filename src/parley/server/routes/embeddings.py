"""`/v1/embeddings` in OpenAI's format (floats or base64), over `parley.embeddings`."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from fastapi import APIRouter, Depends, Request

from parley.embeddings import EmbeddingService, check_inputs
from parley.errors import InvalidRequest
from parley.protocol.openai import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from parley.server.auth import Access
from parley.server.routes.openai import ERRORS

router = APIRouter(tags=["OpenAI-compatible"], dependencies=[Depends(Access("chat"))])


@router.post("/v1/embeddings", response_model=EmbeddingList, responses=ERRORS)
async def embeddings(body: EmbeddingRequest, request: Request) -> EmbeddingList:
    """Embed a string or a list of strings. Models: `all-minilm-l6-v2` (384 dimensions) and each embedded GGUF
    model by its id (mean-pooled by llama.cpp)."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    check_inputs(texts)  # before the worker thread: a bad request costs nothing
    service: EmbeddingService = request.app.state.embeddings
    vectors, tokens = await asyncio.to_thread(service.embed, body.model, texts)  # type: ignore[arg-type]
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise InvalidRequest(f"The model `{body.model}` gives {vectors.shape[1]} dimensions only.",
                             param="dimensions")  # fmt: skip
    data = [Embedding(index=i, embedding=_encode(v, body.encoding_format)) for i, v in enumerate(vectors)]
    return EmbeddingList(data=data, model=body.model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
