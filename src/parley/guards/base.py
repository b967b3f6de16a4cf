"""The Scanner seam, what scanners find, and how a policy turns findings into an action."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Action(StrEnum):
    FLAG = "flag"  # allowed, recorded in the trace
    REDACT = "redact"  # the span is replaced by a typed placeholder
    BLOCK = "block"  # input: 400 content_filter; output: the answer ends with finish_reason content_filter


@dataclass(frozen=True)
class Finding:
    scanner: str
    kind: str  # e.g. "email", "credit_card", "aws_access_key", "injection"
    start: int = -1  # span in the scanned text; -1 when the finding is about the whole text
    end: int = -1
    score: float = 1.0
    detail: str = ""

    @property
    def placeholder(self) -> str:
        return f"[{self.kind.upper()}]"


class Scanner(Protocol):
    name: str

    def scan(self, text: str) -> list[Finding]: ...


@dataclass
class Policy:
    """What to do with each scanner's findings. Scanners not named are not run. `off` keeps the names turned off
    explicitly: `injection_classifier=off` means the classifier is not run at all, where leaving it unnamed
    means its findings take `injection`'s action."""

    actions: dict[str, Action] = field(default_factory=dict)
    off: frozenset[str] = frozenset()

    @property
    def reads_classifier(self) -> bool:
        """Whether the injection classifier reads text under this policy (injection scanning on, the classifier
        not turned off)."""
        return "injection" in self.actions and "injection_classifier" not in self.off

    @classmethod
    def parse(cls, text: str, base: Policy | None = None, side: str | None = None) -> Policy:
        """'injection=block,pii=redact,output:secrets=flag,leak=off' on top of `base`.

        A name may carry a side (`input:` or `output:`); without one it applies to both sides.
        """
        actions = dict(base.actions) if base else {}
        off = set(base.off) if base else set()
        for item in filter(None, (p.strip() for p in text.split(","))):
            name, sep, action = item.partition("=")
            where, _, name = name.strip().rpartition(":")
            action = action.strip()
            if not sep or not name or where not in ("", "input", "output"):
                raise ValueError(f"bad policy item {item!r}: use name=block|redact|flag|off")
            if action not in ("off", *(a.value for a in Action)):
                raise ValueError(f"bad action {action!r} in {item!r}: use block, redact, flag or off")
            if side is not None and where and where != side:
                continue
            if action == "off":
                actions.pop(name, None)
                off.add(name)
            else:
                actions[name] = Action(action)
                off.discard(name)
        return cls(actions, frozenset(off))


@dataclass
class GuardResult:
    text: str
    action: Action | None  # the strongest action taken, None when nothing was found
    findings: list[Finding]

    policy: Policy | None = None

    def summary(self) -> list[dict[str, object]]:
        """The findings for the trace, each with the action its scanner's policy took."""
        policy = self.policy or Policy()
        return [{"scanner": f.scanner, "kind": f.kind, "score": round(f.score, 3), "action": action_for(policy, f),
                 **({"detail": f.detail} if f.detail else {})} for f in self.findings]  # fmt: skip


STRENGTH = {None: 0, Action.FLAG: 1, Action.REDACT: 2, Action.BLOCK: 3}


def apply_policy(text: str, findings: list[Finding], policy: Policy) -> GuardResult:
    """Redact the spans whose scanner says redact (whole-text findings cannot be redacted: they block)."""
    strongest: Action | None = None
    spans = []
    for f in findings:
        action = action_for(policy, f)
        if STRENGTH[action] > STRENGTH[strongest]:
            strongest = action
        if action is Action.REDACT:
            spans.append(f)
    return GuardResult(redact(text, spans), strongest, findings, policy)


def redact(text: str, spans: list[Finding]) -> str:
    """`text` with each finding's span replaced by its placeholder (a span overlapping one already replaced is
    left to it)."""
    out, last = [], 0
    for f in sorted(spans, key=lambda f: (f.start, -f.end)):
        if f.start < last:
            continue  # overlaps a span already redacted
        out.append(text[last : f.start])
        out.append(f.placeholder)
        last = f.end
    out.append(text[last:])
    return "".join(out)


def action_for(policy: Policy, finding: Finding) -> Action:
    """What the policy does with a finding: its scanner's action (flag if unnamed); a finding about the whole
    text cannot be redacted, so redact blocks it. An injection found by the classifier alone (no rule) has its
    own entry, `injection_classifier` (default flag), falling back to `injection`'s."""
    action = policy.actions.get(finding.scanner, Action.FLAG)
    if finding.scanner == "injection" and finding.detail == "classifier":
        action = policy.actions.get("injection_classifier", action)
    return Action.BLOCK if action is Action.REDACT and finding.start < 0 else action
