"""Step `guard_input`: scan what users and tools wrote (the operator's system prompt is trusted), apply the
caller's policy (block → 400 content_filter, redact, flag), decide an off-topic refusal, plant a canary in the
operator's system prompt so the output guard can see it leak, and collect the phrases the latest input dictated
in quotes, so the output guard can see a hijacked answer print one."""

from __future__ import annotations

from parley.errors import ContentFiltered
from parley.guards.base import Action
from parley.guards.hijack import dictated
from parley.guards.output_guard import canary_instruction
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Turn

SCANNED_ROLES = ("user", "tool")
WITHHELD = "[withheld by the guard: this tool result held instructions addressed to the assistant]"


class GuardInput(BaseStep):
    name = "guard_input"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return turn.kind == "chat" and ctx.guards is not None

    def run(self, turn: Turn, ctx: TurnContext) -> None:
        guards = ctx.guards
        assert guards is not None
        policy = guards.input_policy(ctx.key_policy)
        verdicts = []
        for i, msg in enumerate(turn.messages):
            if msg.role not in SCANNED_ROLES:
                continue
            result = guards.input.check(msg.content, policy)
            if result.findings:
                verdicts.append({"message": i, "role": msg.role, "action": result.action,
                                 "findings": result.summary()})  # fmt: skip
            if msg.role == "tool" and any(f.scanner == "injection" for f in result.findings):
                action = policy.actions.get("tool_injection", Action.REDACT)
                verdicts[-1]["tool_injection"] = action
                if action is Action.REDACT:  # the model never reads it; the turn goes on
                    msg.content = WITHHELD if turn.tool_format is None else turn.tool_format.render_result(WITHHELD)
                    continue
                if action is Action.FLAG:
                    continue
            if result.action is Action.BLOCK:
                turn.note(self.name, verdicts=verdicts)
                kinds = sorted({f.kind for f in result.findings if policy.actions.get(f.scanner) is Action.BLOCK})
                raise ContentFiltered(
                    f"The prompt was blocked by the input guard ({', '.join(kinds) or 'policy'}).",
                    param=f"messages[{i}].content",
                )
            msg.content = result.text
        turn.note(self.name, verdicts=verdicts)
        output_policy = guards.output_policy(ctx.key_policy)
        question = next((m.content for m in reversed(turn.messages) if m.role == "user"), "")
        topic = (turn.profile.topic if turn.profile is not None else None) or guards.topic
        if "off_topic" in output_policy.actions and (off := guards.off_topic(question, topic)):
            turn.guard.refusal = off[1]
            turn.note(self.name, off_topic={"similarity": round(off[0], 3), "topic": topic,
                                            "action": output_policy.actions["off_topic"]})
        system = next((m for m in turn.messages if m.role == "system"), None)
        if system is not None and "hijack" in output_policy.actions:  # an operator's task the input may hijack
            last_user = max((i for i, m in enumerate(turn.messages) if m.role == "user"), default=len(turn.messages))
            turn.guard.dictated = sorted({p for m in turn.messages[last_user:] if m.role in SCANNED_ROLES
                                          for p in dictated(m.content)}, key=len, reverse=True)  # fmt: skip
        if system is not None and "leak" in output_policy.actions:
            turn.guard.system_prompt = system.content
            turn.guard.canary = guards.canary_for(system.content)
            system.content += canary_instruction(turn.guard.canary)
            turn.note(self.name, canary=True)
