"""`/v1/embeddings` and `/v1/moderations` through the official client. Embeddings equal what the libraries give
for the same text (sentence-transformers for all-MiniLM-L6-v2, llama-cpp-python's pooled embeddings for the
GGUF model); moderations flag the guards' own scanner test cases, under OpenAI's and Parley's categories."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest

from parley.guards.moderation import OPENAI_CATEGORIES, PARLEY_CATEGORIES
from tests.conftest import MODEL
from tests.guards.test_scanners import (
    INJECTION_POSITIVES,
    PII_NEGATIVES,
    PII_POSITIVES,
    SECRET_NEGATIVES,
    SECRET_POSITIVES,
)

TEXTS = ["The cat sat on the mat.", "Kubernetes schedules pods onto nodes.", "¿Dónde está la estación?"]


@pytest.fixture(scope="module")
def minilm():
    from sentence_transformers import SentenceTransformer

    from parley.guards.embeddings import model_dir

    return SentenceTransformer(str(model_dir()), device="cpu")


def test_minilm_embeddings_equal_the_library(client, minilm):
    resp = client.embeddings.create(model="all-minilm-l6-v2", input=TEXTS, encoding_format="float")
    assert [d.index for d in resp.data] == [0, 1, 2] and resp.model == "all-minilm-l6-v2"
    api = np.array([d.embedding for d in resp.data])
    library = minilm.encode(TEXTS, normalize_embeddings=True)
    assert api.shape == (3, 384)
    np.testing.assert_allclose(api, library, atol=1e-5)
    tokens = sum(len(ids) for ids in minilm.tokenizer(TEXTS)["input_ids"])
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == tokens


def test_base64_is_the_same_vector(server):
    body = {"model": "all-minilm-l6-v2", "input": TEXTS[0]}
    floats = httpx.post(server.url + "/v1/embeddings", json={**body, "encoding_format": "float"}, timeout=60)
    packed = httpx.post(server.url + "/v1/embeddings", json={**body, "encoding_format": "base64"}, timeout=60)
    decoded = np.frombuffer(base64.b64decode(packed.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(decoded, np.array(floats.json()["data"][0]["embedding"], dtype=np.float32))


def test_gguf_embeddings_equal_llama_cpp_pooling(client):
    import llama_cpp

    from parley.engines.llamacpp.engine import embedded_model_path
    from parley.engines.llamacpp.gguf_model import portable_defaults

    resp = client.embeddings.create(model=MODEL, input=TEXTS[:2], encoding_format="float")
    with portable_defaults():
        llama = llama_cpp.Llama(model_path=str(embedded_model_path()), embedding=True, n_ctx=2048, n_batch=2048,
                                n_ubatch=2048, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, n_threads=1,
                                n_threads_batch=1, verbose=False)  # fmt: skip
    try:
        library = np.array(llama.embed(TEXTS[:2], normalize=True))
    finally:
        llama.close()
    api = np.array([d.embedding for d in resp.data])
    assert api.shape == library.shape and api.shape[1] > 100
    np.testing.assert_allclose(api, library, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(api, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "all-minilm-l6-v2", "input": ""}, 400, "input"),
        ({"model": "all-minilm-l6-v2", "input": []}, 400, "input"),
        ({"model": "all-minilm-l6-v2", "input": [1, 2, 3]}, 400, "input"),
        ({"model": "all-minilm-l6-v2", "input": "word " * 400}, 400, "input"),
        ({"model": "all-minilm-l6-v2", "input": "hi", "dimensions": 128}, 400, "dimensions"),
        ({"model": "all-minilm-l6-v2", "input": "hi", "encoding_format": "int8"}, 400, None),
        ({"model": "no-such-model", "input": "hi"}, 404, "model"),
    ],
)
def test_embedding_requests_that_cannot_be_served(server, body, status, param):
    resp = httpx.post(server.url + "/v1/embeddings", json=body, timeout=60)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["message"] and (param is None or error["param"] == param)


def moderate(client, texts):
    return client.moderations.create(input=texts).results


def test_moderations_flag_the_guards_own_cases(client):
    cases = [(text, "pii") for text, _ in PII_POSITIVES] + [(text, "secrets") for text, _ in SECRET_POSITIVES]
    cases += [(text, "prompt-injection") for text in INJECTION_POSITIVES]
    results = []
    for at in range(0, len(cases), 16):
        results += moderate(client, [text for text, _ in cases[at : at + 16]])
    missed = [(text, category) for (text, category), r in zip(cases, results, strict=True)
              if not (r.flagged and r.categories.model_extra[category])]  # fmt: skip
    assert missed == []
    for negatives, category in ((PII_NEGATIVES, "pii"), (SECRET_NEGATIVES, "secrets")):
        for text, r in zip(negatives, moderate(client, negatives), strict=True):
            assert r.categories.model_extra[category] is False, text


def test_moderations_list_openais_categories_and_say_which_were_judged(client, server):
    offensive, benign = moderate(client, ["You are a stupid worthless idiot and everyone hates you.",
                                          "What is the capital of France?"])  # fmt: skip
    assert offensive.flagged and offensive.categories.harassment and offensive.category_scores.harassment >= 0.8
    assert not benign.flagged and benign.category_scores.harassment < 0.5
    raw = httpx.post(server.url + "/v1/moderations", json={"input": "hello"}, timeout=60).json()
    result = raw["results"][0]
    assert raw["model"] == "parley-guards" and raw["id"].startswith("modr-")
    assert set(result["categories"]) == set(result["category_scores"]) == {*OPENAI_CATEGORIES, *PARLEY_CATEGORIES}
    judged = {c for c, types in result["category_applied_input_types"].items() if types == ["text"]}
    assert judged == {"harassment", *PARLEY_CATEGORIES}  # the rest: listed, not evaluated ([])
    assert all(result["category_scores"][c] == 0 for c in set(OPENAI_CATEGORIES) - judged)


def test_moderation_refuses_images_and_unknown_models(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.moderations.create(input=[{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    assert err.value.body["param"] == "input[0]"
    with pytest.raises(openai.BadRequestError):
        client.moderations.create(input="hi", model="someone-elses-model")
