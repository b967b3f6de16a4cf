import pytest

from parley.pipeline.complexity import estimate, question_type


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("What is the capital of France?", "factual"),
        ("Why is the sky blue?", "explain"),
        ("Write a poem about autumn", "creative"),
        ("Summarise the text below", "instruction"),
    ],
)
def test_question_type(text, kind):
    assert question_type(text) == kind


def test_simple_question_gets_small_budget_and_low_temperature():
    c = estimate("What is the capital of France?")
    assert c.tier == "simple"
    assert c.max_tokens == 128
    assert c.temperature == 0.3


def test_code_and_multi_step_prompt_is_complex():
    c = estimate("Explain step by step how to write a Python function that parses a CSV file, then test it.")
    assert c.tier == "complex"
    assert c.max_tokens == 768
    assert c.temperature == 0.2
    assert c.features["code"] and c.features["multi_step"]


def test_math_lowers_temperature():
    assert estimate("Calculate 12 * 7 + 3").temperature == 0.2


def test_creative_raises_temperature():
    assert estimate("Write a short story about a lighthouse keeper").temperature == 0.9
