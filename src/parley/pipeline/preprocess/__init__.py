"""Stage 2, preprocessing: the steps that turn the parsed request into the prompt the model sees.

Add a step: a `BaseStep` subclass with a `name` and `run(turn, ctx)` (and `applies(turn, ctx)` if it is not
for every turn, `default = False` if only configurations that name it should run it) in a module of its own,
and one line in `PREPROCESS` (its place in the dict is its place in the default order).
"""

from __future__ import annotations

from parley.pipeline.preprocess.guard_input import GuardInput
from parley.pipeline.preprocess.limits import Limits
from parley.pipeline.preprocess.normalize import Normalize
from parley.pipeline.preprocess.profile import ProfileStep
from parley.pipeline.preprocess.render import Render
from parley.pipeline.preprocess.response_format import ResponseFormat
from parley.pipeline.preprocess.tools import ToolsStep
from parley.pipeline.stage import TurnStep

PREPROCESS: dict[str, TurnStep] = {
    "profile": ProfileStep(),
    "normalize": Normalize(),
    "guard_input": GuardInput(),
    "response_format": ResponseFormat(),
    "tools": ToolsStep(),
    "render": Render(),
    "limits": Limits(),
}
