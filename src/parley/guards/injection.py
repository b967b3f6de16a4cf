"""Prompt injection and jailbreaks: deobfuscate, then rules, then a classifier on sentence embeddings.

The classifier is a logistic regression over multilingual-e5-small embeddings (embeddings.guard_embedder), trained
by `python -m parley.guards.train` on the project's corpus and on public collections (data/SOURCES.md); its
weights (data/injection_classifier.json: 385 numbers, a threshold, and the 20 directions along which languages
differ, projected out of every vector first so that an attack reads alike in any language) ship with the
package.

It reads a text in pieces: every readable variant whole (in 600-character chunks), and each sentence of a chunk
that has several, so that one instruction in a pasted document or a long role-play is not averaged away by the
text around it. A sentence's vector is pooled from its chunk's own encoder pass (late chunking: the mean of the
chunk's token states over the sentence's tokens), so the sentences cost a mean, not a pass each (encoding them
one by one after the whole took 2.2x the time of the pooled reading on multi-sentence training rows). They count
when the whole reads as at least a little suspicious (`SENTENCE_BAND`). The highest probability decides.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from parley.guards.base import Finding
from parley.guards.deobfuscate import variants
from parley.guards.embeddings import E5
from parley.guards.scripts import UNSPACED

WEIGHTS = Path(__file__).parent / "data" / "injection_classifier.json"

_OBJ = (
    r"(?:all |any |the |your |my |every |)(?:previous|prior|above|earlier|preceding|original|initial|system|old)?\s*"
    r"(?:instructions?|rules|directions|guidelines|prompts?|context|orders|programming|constraints)"
)
# fmt: off
RULES: list[tuple[str, re.Pattern[str]]] = [
    ("ignore_instructions", re.compile(r"\b(?:ignore|disregard|forget|override|skip|drop|discard|abandon|bypass)"
                                       rf"\s+(?:all\s+|everything\s+|what\s+)?{_OBJ}", re.I)),
    ("forget_everything", re.compile(r"\b(?:forget|ignore|disregard|override|abandon|discard|drop|skip)\s+"
                                     r"(?:everything|all|anything)\s+(?:you were|you've been|you have been|above|"
                                     r"before|prior|previous)", re.I)),
    ("new_instructions", re.compile(r"\b(?:new|updated|real|actual|true) "
                                    r"(?:instructions?|task|orders|priority)\s*[:,]|\byour real instructions\b", re.I)),
    ("prompt_leak", re.compile(r"\b(?:print|reveal|show|repeat|output|dump|tell me|quote|display|leak)\b.{0,40}"
                               r"\b(?:system (?:prompt|message)|initial (?:prompt|instructions)|hidden "
                               r"(?:instructions|system|message|prompt)|your (?:prompt|instructions)|everything "
                               r"above|the text above|first \d+ words)", re.I)),
    ("before_conversation", re.compile(r"\btold before (?:this|the) conversation\b", re.I)),
    ("persona_unrestricted", re.compile(r"\b(?:no|without|free of|zero) (?:restrictions|filters|rules|limits|"
                                        r"censorship|guidelines|content polic(?:y|ies))\b", re.I)),
    ("jailbreak_persona", re.compile(r"\b(?:(?-i:DAN)|do anything now|jailbr(?:eak|oken) (?:mode|ai|assistant)|"
                                     r"you are jailbroken|god mode|unfiltered ai|evilbot|mongo tom)\b|"
                                     r"\b(?:enable|activate|enter) developer mode\b.{0,60}\b(?:ignore|no |without)",
                                     re.I)),
    ("system_override", re.compile(r"\b(?:system override|admin override|sudo mode|you are no longer bound|"
                                   r"breaks? every rule|ignore all content polic)", re.I)),
    ("fake_turn", re.compile(r"<\|im_start\|>|<\|system\|>|\[/?INST\]|###\s*(?:system|instruction)|"
                             r"</document>\s*(?:human|user|system)\s*:|\[SYSTEM\]\s*:", re.I | re.M)),
    ("note_to_ai", re.compile(r"\b(?:note|message|instruction)s? (?:to|for) (?:the )?(?:ai|assistant|language model|"
                              r"llm|chatbot)\b|\b(?:ai|assistant) (?:reading this|assistant)\s*:", re.I)),
    ("encoded_payload", re.compile(r"\b(?:decode|run|execute|follow|obey)\b.{0,30}\b(?:base64|hex|rot13|"
                                   r"encoded|cipher)\b.{0,30}\b(?:follow|obey|execute|run|instruction)", re.I)),
    ("deceased_relative", re.compile(r"\b(?:deceased|late|dead)\b.{0,40}\bused to (?:tell|teach|read|show) me\b",
                                     re.I)),
    ("fiction_bypass", re.compile(r"\b(?:world|story|universe) where (?:ai|assistants?|models?) (?:has|have) no "
                                  r"(?:rules|limits|restrictions)", re.I)),
]
# fmt: on


class InjectionClassifier:
    def __init__(self, embedder: E5, path: Path = WEIGHTS) -> None:
        data = json.loads(path.read_text())
        self.embedder = embedder
        self.w = np.asarray(data["weights"], dtype=np.float32)
        self.b = float(data["bias"])
        self.threshold = float(data["threshold"])
        self.directions = np.asarray(data.get("language_directions", []), dtype=np.float32).reshape(-1, len(self.w))

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return self._probabilities(self.embedder.encode(texts))

    def read(self, text: str, sentences: list[str]) -> tuple[float, np.ndarray]:
        """The probability of a text and of each of its sentences, from one encoder pass (E5.encode_parts)."""
        whole, parts = self.embedder.encode_parts(text, sentences)
        p = self._probabilities(np.vstack([whole[None], parts]) if len(sentences) else whole[None])
        return float(p[0]), p[1:]

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        z = without_language(x, self.directions) @ self.w + self.b
        return 1.0 / (1.0 + np.exp(-z))


def without_language(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Vectors with the directions along which languages differ projected out (train.language_directions),
    L2-normalised again."""
    if not len(directions):
        return x
    x = x - (x @ directions.T) @ directions
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def chunks(text: str, size: int = 600) -> list[str]:
    """Long pasted documents are classified in pieces, so an instruction buried in one is not averaged away."""
    if len(text) <= size:
        return [text]
    parts = re.split(r"(?<=[.!?\n])\s+", text)
    out, cur = [], ""
    for part in parts:
        if cur and len(cur) + len(part) > size:
            out.append(cur)
            cur = ""
        cur = f"{cur} {part}".strip()
    return [*out, cur] if cur else out


SENTENCE = re.compile(r"(?<=[.!?。！？।؟])\s*|\n+|(?<=[:;])\s+")
MAX_SENTENCES = 40  # per chunk
SENTENCE_BAND = 0.1  # the whole text's probability from which its sentences' probabilities count
MIN_WORDS = 5  # shorter texts ("Hi", "Tell me a joke.") are left to the rules: an embedding of two words says little


def too_short(text: str) -> bool:
    return len(text.split()) < MIN_WORDS and not (UNSPACED.search(text) and len(text.strip()) >= 8)


def readings(text: str) -> list[tuple[str, list[str]]]:
    """What the classifier reads of a text: every readable variant in chunks, each chunk with its sentences when
    it has several."""
    out: dict[str, list[str]] = {}
    for reading in variants(text):
        for chunk in chunks(reading):
            if chunk not in out:
                parts = [s.strip() for s in SENTENCE.split(chunk) if len(s.strip()) >= 8]
                out[chunk] = list(dict.fromkeys(parts[:MAX_SENTENCES])) if len(parts) > 1 else []
    return list(out.items())


class InjectionScanner:
    name = "injection"

    def __init__(self, classifier: InjectionClassifier | None) -> None:
        self.classifier = classifier

    def scan(self, text: str) -> list[Finding]:
        return self.scan_rules(text) or self.scan_classifier(text)

    def scan_rules(self, text: str) -> list[Finding]:
        rule = self.rule(text)
        return [Finding(self.name, "injection", score=1.0, detail=f"rule:{rule}")] if rule else []

    def scan_classifier(self, text: str) -> list[Finding]:
        """The classifier's finding, if it reads the text as an injection (the rules are not consulted)."""
        if self.classifier is None:
            return []
        score, detail = self._classify(text)
        if score < self.classifier.threshold:
            return []
        return [Finding(self.name, "injection", score=score, detail=detail)]

    @staticmethod
    def rule(text: str) -> str | None:
        """The first rule that matches a readable variant of the text."""
        for reading in variants(text):
            for rule, pattern in RULES:
                if pattern.search(reading):
                    return rule
        return None

    def score(self, text: str) -> tuple[float, str]:
        """How much the text reads as an injection: 1.0 when a rule matches, else the classifier's highest
        probability over the text's pieces (0.0 without a classifier); and what decided it."""
        if rule := self.rule(text):
            return 1.0, f"rule:{rule}"
        return self._classify(text)

    def probability(self, text: str) -> float:
        """The classifier's reading whatever its threshold: the highest probability over the text's pieces, and
        over their sentences too when the whole reads at least a little suspicious (`SENTENCE_BAND`); a text
        is found at a threshold exactly when this reaches it (0.0 without a classifier or under five words)."""
        whole, by_sentence = self._read(text)
        return max(whole, by_sentence) if whole >= SENTENCE_BAND else whole

    def _read(self, text: str) -> tuple[float, float]:
        """The highest probability over the text's pieces read whole, and over their sentences."""
        if self.classifier is None or too_short(text):
            return 0.0, 0.0
        p, by_sentence = 0.0, 0.0
        for chunk, sentences in readings(text):
            whole, each = self.classifier.read(chunk, sentences)
            p, by_sentence = max(p, whole), max(by_sentence, float(each.max(initial=0.0)))
        return p, by_sentence

    def _classify(self, text: str) -> tuple[float, str]:
        if self.classifier is None:
            return 0.0, "no classifier"
        if too_short(text):
            return 0.0, "too short for the classifier"
        p, by_sentence = self._read(text)
        if SENTENCE_BAND <= p < self.classifier.threshold:
            p = max(p, by_sentence)
        return p, "classifier"
