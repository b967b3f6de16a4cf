from parley.pipeline.structured import parse_json_object, render_structured


def test_rendering_is_deterministic_and_key_order_free():
    a = {"task": "summarize", "options": {"length": "short", "tone": "formal"}, "tags": ["x", "y"]}
    b = {"tags": ["x", "y"], "options": {"tone": "formal", "length": "short"}, "task": "summarize"}
    assert render_structured(a) == render_structured(b)
    assert render_structured(a) == (
        "options:\n  length: short\n  tone: formal\ntags:\n  - x\n  - y\ntask: summarize"
    )


def test_rendering_of_nested_lists_numbers_and_multiline_text():
    out = render_structured({"items": [{"id": 1, "ok": True}], "note": "a\nb", "empty": [], "n": None})
    assert out == "empty: []\nitems:\n  - id: 1\n    ok: true\nn: null\nnote: |\n  a\n  b"


def test_parse_json_object_only_accepts_whole_objects():
    assert parse_json_object(' {"a": 1} ') == {"a": 1}
    assert parse_json_object("[1, 2]") is None
    assert parse_json_object("{not json}") is None
    assert parse_json_object("Use {braces} in text") is None
