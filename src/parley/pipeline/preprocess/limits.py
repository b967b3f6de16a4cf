"""Step `limits`: the one check of what a request asks of the model's context window (the prompt, and the
prompt plus `max_tokens`), naming the parameter to change; and of `logit_bias`."""

from __future__ import annotations

from parley.errors import ContextLengthExceeded, InvalidRequest
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Turn

MAX_LOGIT_BIAS = 300


def asked_max_tokens(turn: Turn) -> int | None:
    return getattr(turn.request, "max_completion_tokens", None) or turn.request.max_tokens


class Limits(BaseStep):
    name = "limits"


    def run(self, turn: Turn, ctx: TurnContext) -> None:
        info = ctx.engine_required.info
        self._logit_bias(turn, info.n_vocab, info.capabilities.logit_bias)
        if not info.capabilities.chat_template:
            turn.note(self.name, context_window=info.context_window, checked="by the engine")
            return
        prompt_param = "messages" if turn.kind == "chat" else "prompt"
        n, window = len(turn.prompt_tokens), info.context_window
        if n == 0:
            raise InvalidRequest("The prompt is empty: there is nothing to continue.", param=prompt_param)
        if n >= window:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {window} tokens. However, your "
                f"{prompt_param} resulted in {n} tokens. Please reduce the length of the {prompt_param}.",
                param=prompt_param,
            )
        asked = asked_max_tokens(turn)
        if asked is not None and n + asked > window:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {window} tokens. However, you requested {n + asked} "
                f"tokens ({n} in the {prompt_param}, {asked} in the completion).",
                param="max_completion_tokens" if getattr(turn.request, "max_completion_tokens", None) else "max_tokens",
            )
        turn.note(self.name, context_window=window, room=window - n)

    def _logit_bias(self, turn: Turn, n_vocab: int, supported: bool) -> None:
        bias = turn.request.logit_bias or {}
        if not bias:
            return
        if not supported:
            raise InvalidRequest(f"The model `{turn.model}` does not take logit_bias.", param="logit_bias")
        if len(bias) > MAX_LOGIT_BIAS:
            raise InvalidRequest(f"logit_bias may hold at most {MAX_LOGIT_BIAS} entries.", param="logit_bias")
        for key, value in bias.items():
            if not key.lstrip("-").isdigit() or not 0 <= int(key) < (n_vocab or 2**31):  # 0: the engine checks
                raise InvalidRequest(f"logit_bias key {key!r} is not a token id.", param="logit_bias")
            if not -100 <= value <= 100:
                raise InvalidRequest("logit_bias values must be between -100 and 100.", param="logit_bias")
