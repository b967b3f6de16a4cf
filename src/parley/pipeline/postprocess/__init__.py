"""Stage 5, post-processing: incremental filters over the answer's stream.

Add a step: a `BaseStep` subclass with a `name` and `build(turn, ctx)` returning a `TextFilter` (and
`applies(turn, ctx)` if it is not for every turn) in a module of its own, and one line in `POSTPROCESS` (its
place there is its place in the default order).
"""

from __future__ import annotations

from parley.pipeline.postprocess.stage import PostprocessStage
from parley.pipeline.postprocess.steps import (
    Fences,
    Format,
    Grammar,
    Html,
    LeakedTokens,
    OutputGuard,
    Repetition,
    Truncation,
)
from parley.pipeline.stage import FilterStep

POSTPROCESS: dict[str, FilterStep] = {
    "leaked_tokens": LeakedTokens(),
    "html": Html(),
    "output_guard": OutputGuard(),
    "repetition": Repetition(),
    "truncation": Truncation(),
    "fences": Fences(),
    "grammar": Grammar(),
    "format": Format(),
}

__all__ = ["POSTPROCESS", "PostprocessStage"]
