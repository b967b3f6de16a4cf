"""Step `profile`: what the chosen profile tells the model. Its system prompt (rendered for this request)
goes before the request's own system message, its few-shot examples before the conversation, and a `json`
profile constrains the answer to its schema when the request asks for no format of its own."""

from __future__ import annotations

from parley.errors import InvalidRequest
from parley.pipeline.context import TurnContext
from parley.pipeline.preprocess.response_format import json_instruction
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Message, Turn
from parley.protocol.openai import ChatCompletionRequest


class ProfileStep(BaseStep):
    name = "profile"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return turn.profile is not None and turn.kind == "chat"

    def run(self, turn: Turn, ctx: TurnContext) -> None:
        profile = turn.profile
        assert profile is not None and isinstance(turn.request, ChatCompletionRequest)
        metadata = (turn.request.model_extra or {}).get("metadata")
        try:
            system = profile.render_system_prompt(metadata=metadata if isinstance(metadata, dict) else {},
                                                  model=turn.model)  # fmt: skip
        except ValueError as exc:
            raise InvalidRequest(f"Profile `{profile.name}`: {exc}", param="metadata") from exc
        json_answer = profile.format == "json" and turn.request.response_format is None
        if json_answer:
            if not ctx.engine_required.info.capabilities.grammar:
                raise InvalidRequest(f"The model `{turn.model}` cannot constrain its output to JSON.", param="model")
            turn.grammar = profile.grammar()
            turn.response_format = "json_schema" if profile.json_schema else "json_object"
            turn.json_schema = profile.json_schema
            system = f"{system}\n\n{json_instruction(profile.json_schema)}".strip()
        examples = [Message(role, text) for ex in profile.examples
                    for role, text in (("user", ex.user), ("assistant", ex.assistant))]  # fmt: skip
        first_system = bool(turn.messages) and turn.messages[0].role == "system"
        if system and first_system:
            turn.messages[0].content = f"{system}\n\n{turn.messages[0].content}"
        elif system:
            turn.messages.insert(0, Message("system", system))
        at = 1 if (system or first_system) else 0
        turn.messages[at:at] = examples
        turn.note(self.name, profile=profile.name, format=profile.format, system_chars=len(system),
                  examples=len(profile.examples), json=json_answer)  # fmt: skip
