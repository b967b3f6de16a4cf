"""Moderation, in OpenAI's categories and Parley's own, from the guards' scanners.

OpenAI's categories are all listed, as its clients expect; the guards score only `harassment` (the offensive-
language classifier). A category the guards cannot judge has score 0 and an empty `applied_input_types` list,
which says "not evaluated" rather than "safe". Parley adds `prompt-injection` (rules, then the classifier's
probability), `pii` and `secrets` (the scanners: 1 when something was found). docs/security.md lists them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parley.guards.injection import InjectionScanner
from parley.guards.output_guard import OFFENSIVE_THRESHOLD
from parley.guards.pii import PIIScanner
from parley.guards.secrets import SecretScanner

if TYPE_CHECKING:
    from parley.guards.service import Guards

MODEL = "parley-guards"
OPENAI_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
                     "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
                     "sexual/minors", "violence", "violence/graphic")  # fmt: skip
PARLEY_CATEGORIES = ("prompt-injection", "pii", "secrets")


def moderate(guards: Guards, texts: list[str]) -> list[dict[str, Any]]:
    """One result per text: `flagged`, `categories`, `category_scores`, `category_applied_input_types`."""
    injection = guards.input.injection_scanner() or InjectionScanner(None)
    offensive = guards.offensive_scores(texts)
    pii, secrets = PIIScanner(), SecretScanner()
    results = []
    for text, harassment in zip(texts, offensive, strict=True):
        injection_score, _ = injection.score(text)
        threshold = injection.classifier.threshold if injection.classifier is not None else 1.0
        found_pii, found_secrets = bool(pii.scan(text)), bool(secrets.scan(text))
        judged = {
            "harassment": (harassment, harassment >= OFFENSIVE_THRESHOLD),
            "prompt-injection": (injection_score, injection_score >= threshold),
            "pii": (float(found_pii), found_pii),
            "secrets": (float(found_secrets), found_secrets),
        }
        categories, scores, applied = {}, {}, {}
        for name in (*OPENAI_CATEGORIES, *PARLEY_CATEGORIES):
            score, flagged = judged.get(name, (0.0, False))
            categories[name], scores[name] = flagged, round(float(score), 6)
            applied[name] = ["text"] if name in judged else []
        results.append({"flagged": any(categories.values()), "categories": categories, "category_scores": scores,
                        "category_applied_input_types": applied})  # fmt: skip
    return results
