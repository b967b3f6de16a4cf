"""What the continuous batcher counts, as `/parley/status` reports it (and metrics will)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class BatcherCounters:
    steps: int = 0
    admitted: int = 0
    rejected: int = 0
    cancelled: int = 0  # ended because the client left (or the server shut down)
    stopped: int = 0  # ended early by the caller: a stop sequence, a post-processing step
    finished: int = 0  # ended by the model: end of generation, or the token budget
    prompt_tokens: int = 0
    prompt_tokens_cached: int = 0
    generated_tokens: int = 0
    decode_errors: int = 0
    prefix_copies: int = 0
    lazy_grammar_armed: int = 0  # sequences whose grammar applied once they wrote its trigger
    lazy_grammar_rewrites: int = 0  # tokens that overshot a trigger, replaced by the text up to its end

    def report(self) -> dict[str, int]:
        c = asdict(self)
        for name in ("admitted", "rejected", "cancelled", "stopped", "finished"):
            c[f"requests_{name}"] = c.pop(name)
        return c
