"""The input guard: every scanner over the user's text, its policy applied, a verdict for the trace."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.guards.base import Action, Finding, GuardResult, Policy, Scanner, apply_policy, redact
from parley.guards.embeddings import Embedder
from parley.guards.injection import InjectionClassifier, InjectionScanner
from parley.guards.pii import PIIScanner
from parley.guards.secrets import SecretScanner

# `tool_injection`: what becomes of a tool's result that reads as an injection (indirect prompt injection):
# redact withholds the result from the model (the turn goes on), block refuses the request, flag only notes it.
# `injection_classifier`: what becomes of a prompt only the classifier reads as an injection (no rule matched).
# Flag by default: on held-out everyday instructions ("You are given a tweet; decide whether it is offensive")
# it was wrong 29% of the time (bench/guards.py), too often to refuse people on its word alone.
DEFAULT_INPUT_POLICY = Policy({"injection": Action.BLOCK, "injection_classifier": Action.FLAG,
                               "secrets": Action.REDACT, "pii": Action.REDACT,
                               "tool_injection": Action.REDACT})  # fmt: skip


@dataclass
class InputGuard:
    scanners: list[Scanner]
    policy: Policy = field(default_factory=lambda: DEFAULT_INPUT_POLICY)

    @classmethod
    def default(cls, policy: Policy | None = None, *, classifier: bool = True) -> InputGuard:
        from parley.guards.embeddings import guard_embedder

        clf = InjectionClassifier(guard_embedder()) if classifier else None
        return cls([InjectionScanner(clf), PIIScanner(), SecretScanner()], policy or DEFAULT_INPUT_POLICY)

    def embedder(self) -> Embedder:
        from parley.guards.embeddings import shared_embedder

        return shared_embedder()

    def scan_text(self, text: str, policy: Policy | None = None) -> list[Finding]:
        """Every active scanner's findings. The injection scanner reads the text with the PII and secrets
        found replaced by their placeholders: an address or a card number says nothing about intent, and the
        classifier had learnt "an email address" from attacks that send data to one."""
        findings, unread = self.scan_now(text, policy)
        return (self.read_later(unread) if unread is not None else []) + findings

    def scan_now(self, text: str, policy: Policy | None = None) -> tuple[list[Finding], str | None]:
        """The findings of everything but the injection classifier, and the (masked) text the classifier has
        still to read: None when a rule already found an injection, injections are not scanned for, or the
        policy turns the classifier off (`injection_classifier=off`)."""
        active = (policy or self.policy).actions
        others = [f for s in self.scanners if s.name in active and s.name != "injection" for f in s.scan(text)]
        injection = self.injection_scanner() if "injection" in active else None
        if injection is None:
            return others, None
        masked = redact(text, [f for f in others if f.start >= 0])
        ruled = injection.scan_rules(masked)
        skip = ruled or injection.classifier is None or not (policy or self.policy).reads_classifier
        return ruled + others, (None if skip else masked)

    def read_later(self, masked: str) -> list[Finding]:
        """The classifier's reading of a text `scan_now` left to it."""
        injection = self.injection_scanner()
        return injection.scan_classifier(masked) if injection is not None else []

    def injection_scanner(self) -> InjectionScanner | None:
        """The injection scanner among this guard's scanners, if any."""
        return next((s for s in self.scanners if isinstance(s, InjectionScanner)), None)

    def check(self, text: str, policy: Policy | None = None) -> GuardResult:
        policy = policy or self.policy
        return apply_policy(text, self.scan_text(text, policy), policy)
