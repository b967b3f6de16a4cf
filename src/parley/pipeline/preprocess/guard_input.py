"""Step `guard_input`: scan what users and tools wrote (the operator's system prompt is trusted), apply the
caller's policy (block → 400 content_filter, redact, flag), decide an off-topic refusal, and plant a canary in
the operator's system prompt so the output guard can see it leak."""

from __future__ import annotations

from parley.errors import ContentFiltered
from parley.guards.base import Action
from parley.guards.output_guard import canary_instruction
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Turn

SCANNED_ROLES = ("user", "tool")


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
                verdicts.append({"message": i, "action": result.action, "findings": result.summary()})
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
        if system is not None and "leak" in output_policy.actions:
            turn.guard.system_prompt = system.content
            turn.guard.canary = guards.canary_for(system.content)
            system.content += canary_instruction(turn.guard.canary)
            turn.note(self.name, canary=True)
