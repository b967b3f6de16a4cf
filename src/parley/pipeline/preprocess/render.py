"""Step `render`: the prompt as the model sees it. Chat messages go through the model's own chat template and
tokenizer (or, for an engine that applies its own template, travel as messages); a text prompt is tokenised
as plain text; a prompt of token ids is checked against the vocabulary."""

from __future__ import annotations

from parley.errors import InvalidRequest
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Turn


class Render(BaseStep):
    name = "render"


    def run(self, turn: Turn, ctx: TurnContext) -> None:
        engine = ctx.engine_required
        if turn.kind == "chat":
            if not engine.info.capabilities.chat_template:
                turn.note(self.name, template="engine")  # the engine renders the messages itself
                return
            turn.prompt = engine.apply_chat_template([{"role": m.role, "content": m.content} for m in turn.messages])
            turn.prompt_tokens = engine.tokenize(turn.prompt)
        elif not engine.info.capabilities.chat_template:  # the engine tokenises the text itself
            if isinstance(turn.raw_prompt, list):
                raise InvalidRequest(f"The model `{turn.model}` takes a text prompt, not token ids.", param="prompt")
            turn.prompt = str(turn.raw_prompt)
            turn.note(self.name, template="engine", chars=len(turn.prompt))
            return
        elif isinstance(turn.raw_prompt, list):
            bad = [t for t in turn.raw_prompt if not 0 <= t < engine.info.n_vocab]
            if bad:
                raise InvalidRequest(f"Token id {bad[0]} is outside the vocabulary.", param="prompt")
            turn.prompt_tokens = list(turn.raw_prompt)
            turn.prompt = engine.detokenize(turn.prompt_tokens)
        else:
            turn.prompt = str(turn.raw_prompt)
            turn.prompt_tokens = engine.tokenize(turn.prompt, special=False)
        turn.note(self.name, prompt_tokens=len(turn.prompt_tokens), chars=len(turn.prompt))
