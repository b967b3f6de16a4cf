"""The guards a server runs: loaded once (the embedding model takes seconds), shared by every request."""

from __future__ import annotations

import hashlib
import secrets
from concurrent.futures import Future

from parley.guards.base import Finding, Policy
from parley.guards.input_guard import DEFAULT_INPUT_POLICY, InputGuard
from parley.guards.links import LinkPolicy
from parley.guards.output_guard import DEFAULT_OUTPUT_POLICY, OutputGuard
from parley.guards.paraphrase import ParaphraseJudge
from parley.guards.pii import PIIScanner
from parley.guards.readers import readers
from parley.guards.secrets import SecretScanner

REFUSAL = ("I'm sorry, but I can only help with questions about {topic}. "
           "Could you rephrase your question in that context?")


class Guards:
    def __init__(
        self, policy: str = "", *, classifier: bool = True, topic: str | None = None, topic_threshold: float = 0.2,
        link_allowlist: list[str] | None = None,
    ) -> None:
        self.links = LinkPolicy(list(link_allowlist or []))
        self.input_base = Policy.parse(policy, DEFAULT_INPUT_POLICY, side="input")
        self.output_base = Policy.parse(policy, DEFAULT_OUTPUT_POLICY, side="output")
        self.input = InputGuard.default(self.input_base, classifier=classifier)
        from parley.guards.offensive import OffensiveScorer

        self._offensive = OffensiveScorer()
        self._salt = secrets.token_bytes(16)
        self.topic, self.topic_threshold = topic, topic_threshold
        self._topic_vectors: dict[str, object] = {}
        self.paraphrase: ParaphraseJudge | None = None  # with the classifier's model: none without it
        if classifier:
            from parley.guards.embeddings import guard_embedder

            self.paraphrase = ParaphraseJudge(guard_embedder())
        if topic:
            self._topic_vector(topic)

    def _topic_vector(self, topic: str):  # -> a numpy vector
        vector = self._topic_vectors.get(topic)
        if vector is None:
            if len(self._topic_vectors) > 256:  # profiles come and go; don't keep every topic ever seen
                self._topic_vectors.clear()
            vector = self._topic_vectors[topic] = self.input.embedder().encode([topic])[0]
        return vector

    def off_topic(self, question: str, topic: str | None = None) -> tuple[float, str] | None:
        """(similarity, polite refusal) when a topic is declared (`topic`, else the server's) and the question
        is not about it."""
        topic = topic or self.topic
        if not topic or not question.strip():
            return None
        similarity = float(self.input.embedder().encode([question])[0] @ self._topic_vector(topic))
        if similarity >= self.topic_threshold:
            return None
        return similarity, REFUSAL.format(topic=topic)

    def read_later(self, masked: str) -> Future[list[Finding]]:
        """The injection classifier's reading of a text, in the readers' child process (readers.py)."""
        return readers.read(masked)

    def input_policy(self, key_policy: str | None) -> Policy:
        return Policy.parse(key_policy, self.input_base, side="input") if key_policy else self.input_base

    def output_policy(self, key_policy: str | None) -> Policy:
        return Policy.parse(key_policy, self.output_base, side="output") if key_policy else self.output_base

    def canary_for(self, system_prompt: str) -> str:
        """Stable for a given system prompt (so the prompt prefix stays cacheable), unguessable without the
        process's salt."""
        return "pc-" + hashlib.sha256(self._salt + system_prompt.encode()).hexdigest()[:12]

    def offensive_scores(self, texts: list[str]) -> list[float]:
        return self._offensive.scores(texts)

    def output_guard(self, key_policy: str | None, canary: str | None, system_prompt: str | None,
                     dictated: list[str] | None = None) -> OutputGuard:  # fmt: skip
        """The streaming output guard for one answer, under the caller's policy."""
        return OutputGuard(self.output_policy(key_policy), [PIIScanner(), SecretScanner()], canary=canary,
                           system_prompt=system_prompt, offensive=self.offensive_scores, dictated=dictated,
                           paraphrase=self.paraphrase)  # fmt: skip


class GuardsHolder:
    """Loads the guards off the event loop at start-up; until then requests get 503 (the server not ready)."""

    def __init__(self, enabled: bool, policy: str, topic: str | None = None, topic_threshold: float = 0.2,
                 link_allowlist: list[str] | None = None, reader_nice: int | None = None) -> None:  # fmt: skip
        self.enabled, self.policy, self.link_allowlist = enabled, policy, link_allowlist
        if reader_nice is not None:
            readers.nice = reader_nice
        self.topic, self.topic_threshold = topic, topic_threshold
        self.guards: Guards | None = None
        self.error: str | None = None

    async def load(self) -> None:
        import asyncio
        import logging

        if not self.enabled:
            return
        log = logging.getLogger(__name__)
        try:
            # the readers' child loads its model meanwhile, if this policy reads (injection scanning on, the
            # classifier not turned off); a key's policy that reads starts it at its first reading
            reads = Policy.parse(self.policy, DEFAULT_INPUT_POLICY, side="input").reads_classifier
            self.guards, _ = await asyncio.gather(
                asyncio.to_thread(Guards, self.policy, topic=self.topic, topic_threshold=self.topic_threshold,
                                  link_allowlist=self.link_allowlist),
                asyncio.to_thread(readers.warm) if reads else asyncio.sleep(0),
            )  # fmt: skip
        except Exception as exc:  # a broken guard install must say why, not crash-loop
            log.exception("guards failed to load")
            self.error = f"{type(exc).__name__}: {exc}"
            return
        policy = {side: ", ".join(f"{k}={v.value}" for k, v in p.actions.items())
                  for side, p in (("input", self.guards.input_base), ("output", self.guards.output_base))}  # fmt: skip
        log.info("guards ready: input %s; output %s", policy["input"], policy["output"])

    def close(self) -> None:
        readers.close()

    @property
    def ready(self) -> bool:
        return not self.enabled or self.guards is not None

    def get(self) -> Guards | None:
        if not self.enabled:
            return None
        if self.guards is None:
            from parley.errors import GuardsUnavailable

            why = f"the guards failed to load: {self.error}" if self.error else "the guards are still loading"
            raise GuardsUnavailable(f"Not ready: {why}.", headers={"Retry-After": "2"})
        return self.guards
