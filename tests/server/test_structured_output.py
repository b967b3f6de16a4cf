"""response_format: grammar-constrained decoding makes the answer parse and validate."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.conftest import MODEL

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "vip": {"type": "boolean"}},
            "required": ["name", "vip"],
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
                "required": ["sku", "quantity"],
            },
            "minItems": 1,
            "maxItems": 3,
        },
        "status": {"enum": ["pending", "shipped", "delivered"]},
    },
    "required": ["order_id", "customer", "items", "status"],
}
TICKET = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "priority": {"type": "integer", "enum": [1, 2, 3]},
        "confidence": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["billing", "bug", "feature"]}},
    },
    "required": ["sentiment", "priority", "confidence", "tags"],
}


@pytest.mark.parametrize(
    ("schema", "prompt"),
    [
        (PERSON, "Invent a person and give their name and age."),
        (ORDER, "Create an example order for a customer called Ada with two items that has shipped."),
        (TICKET, "Classify this support ticket: 'I was charged twice this month, please fix it!'"),
    ],
    ids=["flat", "nested", "enums"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_json_schema_answer_parses_and_validates(client, schema, prompt, stream):
    kw = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        "temperature": 0,
        "max_tokens": 400,
    }
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kw))
    else:
        resp = client.chat.completions.create(**kw)
        assert resp.choices[0].finish_reason == "stop"
        text = resp.choices[0].message.content
    jsonschema.validate(json.loads(text), schema)


def test_json_object_mode_returns_an_object(client):
    resp = client.chat.completions.create(
        model=MODEL, temperature=0,
        messages=[{"role": "user", "content": "Return a JSON object with the keys city and country for Paris."}],
        response_format={"type": "json_object"},
    )  # fmt: skip
    text = resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop", text
    assert isinstance(json.loads(text), dict)


def test_sampled_json_still_validates(client):
    for seed in (1, 2, 3):
        resp = client.chat.completions.create(
            model=MODEL, temperature=1.0, seed=seed, max_tokens=400,
            messages=[{"role": "user", "content": "Classify: 'The app crashes when I log in.'"}],
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": TICKET}},
        )  # fmt: skip
        jsonschema.validate(json.loads(resp.choices[0].message.content), TICKET)
