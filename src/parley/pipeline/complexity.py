"""How hard a prompt looks, and the generation budget and temperature that follow when the client left
them unset. The rules are deliberately simple and visible in the trace; docs/pipeline.md explains them.

score = length (words/50, at most 2)
      + question type (factual 0, explain 1, creative 1.5, other instruction 0.5)
      + code 1.5 + math 1 + multi-step 1.5
tier:  score < 1 → simple (128 tokens) · < 2.5 → moderate (384) · else complex (768)
temperature: code or math 0.2 · factual 0.3 · creative 0.9 · otherwise 0.7
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FACTUAL = re.compile(r"^\s*(what|who|when|where|which|is|are|was|were|does|do|did|can|define|name)\b", re.I)
EXPLAIN = re.compile(r"\b(why|how|explain|describe|compare|difference|pros and cons|analy[sz]e)\b", re.I)
CREATIVE = re.compile(r"\b(write|story|poem|haiku|song|imagine|compose|invent|creative)\b", re.I)
CODE = re.compile(
    r"```|\b(def|class|function|return|import|select|const|var|lambda)\b.*[(:{=]|"
    r"\b(code|python|javascript|typescript|sql|regex|bash|script|function|compile|bug|stack trace)\b",
    re.I,
)
MATH = re.compile(
    r"\d\s*[-+*/^×÷=]\s*\d|\b(calculate|compute|solve|equation|integral|derivative|sum of|percent|"
    r"probability|average)\b",
    re.I,
)
MULTI_STEP = re.compile(r"\b(step by step|steps|first\b.*\bthen|and then|finally|plan)\b|^\s*\d+[.)]\s", re.I | re.M)

TIERS = (("simple", 1.0, 128), ("moderate", 2.5, 384), ("complex", float("inf"), 768))


@dataclass
class Complexity:
    score: float
    tier: str
    max_tokens: int
    temperature: float
    features: dict[str, object] = field(default_factory=dict)


def question_type(text: str) -> str:
    if CREATIVE.search(text):
        return "creative"
    if EXPLAIN.search(text):
        return "explain"
    if FACTUAL.search(text) or text.rstrip().endswith("?"):
        return "factual"
    return "instruction"


def estimate(text: str) -> Complexity:
    """Estimate from the text the model is asked to answer (the last user message)."""
    words = len(text.split())
    kind = question_type(text)
    code = bool(CODE.search(text))
    math = bool(MATH.search(text))
    multi = bool(MULTI_STEP.search(text)) or text.count("?") >= 2
    score = min(words / 50, 2.0)
    score += {"factual": 0.0, "explain": 1.0, "creative": 1.5, "instruction": 0.5}[kind]
    score += 1.5 * code + 1.0 * math + 1.5 * multi
    tier, max_tokens = next((name, budget) for name, limit, budget in TIERS if score < limit)
    temperature = 0.2 if code or math else {"factual": 0.3, "creative": 0.9}.get(kind, 0.7)
    features = {"words": words, "question_type": kind, "code": code, "math": math, "multi_step": multi}
    return Complexity(round(score, 2), tier, max_tokens, temperature, features)
