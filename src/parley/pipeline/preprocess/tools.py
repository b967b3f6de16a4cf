"""Step `tools`: the offered functions described in the system prompt in the template's tool format, and the
grammar that makes every call parse and its arguments match the function's schema: from the first token for
`tool_choice: required` or a named function; under `auto`, from just after the model writes the format's
opening tag (the engine's lazy grammar, engines/llamacpp/lazy.py), so that free text stays free. A call that
still does not parse (cut off by the token budget) is dropped and counted in the trace."""

from __future__ import annotations

from parley.errors import InvalidRequest
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Message, Turn
from parley.tools.grammar import calls_grammar


class ToolsStep(BaseStep):
    name = "tools"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return turn.tools is not None

    def run(self, turn: Turn, ctx: TurnContext) -> None:
        tools, fmt = turn.tools, turn.tool_format
        assert tools is not None and fmt is not None
        if tools.choice == "none":
            turn.note(self.name, choice="none")
            return
        if not ctx.engine_required.info.capabilities.chat_template:  # an upstream applies its own tool syntax
            turn.note(self.name, choice=tools.choice, tools=[t.name for t in tools.offered()], format="upstream")
            return
        if turn.grammar is not None:
            raise InvalidRequest("Tools cannot be combined with a JSON response format.", param="tools")
        offered = tools.offered()
        prompt = fmt.system_prompt(offered, required=tools.choice != "auto")
        if turn.messages and turn.messages[0].role == "system":
            turn.messages[0].content = f"{turn.messages[0].content}\n\n{prompt}".strip()
        else:
            turn.messages.insert(0, Message("system", prompt))
        parallel = tools.parallel and tools.choice != "function"
        lazy = tools.choice == "auto"  # the grammar waits for the opening tag
        turn.grammar = calls_grammar(fmt, offered, parallel=parallel, after_open=lazy)
        turn.grammar_trigger = fmt.call_open if lazy else None
        turn.note(self.name, choice=tools.choice, tools=[t.name for t in offered], format=fmt.name, parallel=parallel,
                  grammar=f"after {fmt.call_open}" if turn.grammar_trigger else "from the first token")  # fmt: skip
