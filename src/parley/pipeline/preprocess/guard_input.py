"""Step `guard_input`: scan what users and tools wrote (the operator's system prompt is trusted), apply the
caller's policy (block → 400 content_filter, redact, flag), decide an off-topic refusal, plant a canary in the
operator's system prompt so the output guard can see it leak, and collect the phrases the latest input dictated
in quotes, so the output guard can see a hijacked answer print one.

The injection classifier is the slow part (tens of milliseconds a message). Where its verdict can only flag (the
default policy: `injection_classifier=flag`) it changes nothing the user gets, so a user message's reading is
left to the readers' child process (guards/readers.py) while the model answers. It starts when the answer's
first token arrives (`GuardState.start_readings`, from the output stage), not before: on two cores a reading
that overlaps the prompt's prefill delays the first token (a burst of 16 requests: TTFT p50 +1.0 s, guards on
against off, when the readings started at once). `settle` adds its verdict to this step's note before the
trace closes and the turn-end observers (completion log, metrics) read it. Where the classifier can
block or redact (`injection_classifier=block`, or a tool result under `tool_injection`), it is read here,
before the model sees anything."""

from __future__ import annotations

import asyncio
import time

from parley.errors import ContentFiltered
from parley.guards.base import Action, GuardResult, Policy, apply_policy
from parley.guards.hijack import dictated
from parley.guards.output_guard import canary_instruction
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Deferred, Turn

SCANNED_ROLES = ("user", "tool")
SETTLE_WAIT = 10.0  # seconds the end of an answer waits for a reading still running (then noted as unfinished)
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
            if msg.role == "user" and _only_flags(policy):
                findings, unread = guards.input.scan_now(msg.content, policy)
                result = apply_policy(msg.content, findings, policy)
                if unread is not None:
                    reading = Deferred(lambda text=unread: guards.read_later(text))  # at the first token
                    turn.guard.reading.append((i, msg.role, policy, reading))
            else:
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


def _only_flags(policy: Policy) -> bool:
    """Whether a finding of the classifier alone can only be flagged under this policy."""
    if "injection" not in policy.actions:
        return False
    return policy.actions.get("injection_classifier", policy.actions["injection"]) is Action.FLAG


async def settle(turn: Turn, wait: float = SETTLE_WAIT) -> float:
    """Add the verdicts of the classifier readings left running to the `guard_input` note (once). A reading
    that has not finished within `wait` seconds (for all of them together) is cancelled and noted as unfinished.
    Returns the seconds it waited."""
    reading, turn.guard.reading = turn.guard.reading, []
    if not reading:
        return 0.0
    verdicts = turn.notes.setdefault(GuardInput.name, {}).setdefault("verdicts", [])
    start = time.perf_counter()
    for i, role, policy, deferred in reading:
        if wait <= 0 and not deferred.started():  # ended before its first token: not worth reading now
            deferred.cancel()
        future = deferred.start()  # not started yet if no token came: read now
        try:
            left = start + wait - time.perf_counter()  # one wait for all of a turn's readings
            if future.done() or left <= 0:  # most are done: no turn of the event loop (tens of ms under load)
                findings = future.result(timeout=0)
            else:
                findings = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), left)
        except Exception:  # noqa: BLE001 - timed out or failed: the trace says the verdict is missing
            future.cancel()
            verdicts.append({"message": i, "role": role, "classifier": "unfinished"})
            continue
        if not findings:
            continue
        found = GuardResult("", Action.FLAG, findings, policy).summary()
        earlier = next((v for v in verdicts if v.get("message") == i and "findings" in v), None)
        if earlier is None:
            verdicts.append({"message": i, "role": role, "action": Action.FLAG, "findings": found})
        else:
            earlier["findings"] = found + earlier["findings"]
    verdicts.sort(key=lambda v: v.get("message", 0))
    return time.perf_counter() - start
