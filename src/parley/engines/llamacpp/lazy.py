"""Parley's own lazy grammar: a sequence samples freely until its text contains the trigger (a tool format's
opening tag), and from the byte after the trigger the grammar applies.

llama.cpp's lazy-grammar sampler throws a C++ exception through its C API when the token that completes the
trigger also carries text the grammar cannot take (seen: `<tool_call></`), which ends the process. Here that
token never reaches a grammar: a token that overshoots the trigger is replaced by the tokens of the text up to
the trigger's end (the first in its place, the rest forced on the next steps), and the grammar (compiled when the
request came in) is consulted from the token after the trigger on, so it starts at its root on a clean
boundary."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import llama_cpp


@dataclass
class LazyGrammar:
    trigger: bytes
    grammar: llama_cpp.llama_sampler_p | None  # compiled when the request came in, consulted once triggered
    tail: bytes = b""  # the end of the text so far: what could be the start of the trigger
    forced: deque[int] = field(default_factory=deque)  # tokens to emit instead of sampling
    armed: bool = False  # the grammar is consulted
    ready: bool = False  # the trigger is complete: the grammar applies once the forced tokens are out

    def watch(self, piece: bytes, tokenize: Callable[[bytes], list[int]]) -> list[int] | None:
        """After a sampled token's `piece` (its text, special tokens included). Returns None to keep the token,
        or the tokens to emit instead (the text up to the trigger's end) when the token overshoots it."""
        text = self.tail + piece
        at = text.find(self.trigger)
        if at < 0:
            self.tail = text[-(len(self.trigger) - 1) :] if len(self.trigger) > 1 else b""
            return None
        end = at + len(self.trigger)
        self.ready = True
        if end == len(text):
            return None
        return tokenize(text[len(self.tail) : end])

    def free(self) -> None:
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
