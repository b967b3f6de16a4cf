"""Incremental clean-up filters for what small models get wrong. Each sees the answer piece by piece and
holds back only what it may still need to change, so a streamed answer and a whole one end identically.

- `LeakedTokenStripper`: chat-template tokens that leak as text; a turn marker ends the answer.
- `RepetitionCutter`: degenerate loops (the same span again and again) are cut to one copy.
- `TruncationTrimmer`: a sentence cut off by max_tokens is trimmed back to the last full sentence.
- `FenceCloser`: an unclosed ``` code fence is closed.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

# Markers that open or close a turn in common chat templates: if the model writes one, its answer is over.
TURN_MARKERS = (
    "<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "<|end|>",
    "<|user|>", "<|assistant|>", "<|system|>", "</s>", "<end_of_turn>", "<start_of_turn>", "[INST]", "[/INST]",
)  # fmt: skip
FENCE = re.compile(r"^\s*(```|~~~)")
SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]*_]*)(?=\s|$)|\n")


class TextFilter(Protocol):
    name: str
    stop: bool  # the filter wants generation to end

    def feed(self, text: str, tokens_left: int) -> str: ...

    def finish(self, reason: str) -> str: ...

    def report(self) -> dict[str, Any]: ...


def _partial_marker(buf: str, markers: tuple[str, ...]) -> int:
    """Length of the longest tail of `buf` that could still grow into one of `markers`."""
    start = max(buf.rfind("<"), buf.rfind("["))
    if start < 0 or len(buf) - start >= max(map(len, markers)):
        return 0
    tail = buf[start:]
    return len(tail) if any(m.startswith(tail) for m in markers) else 0


class LeakedTokenStripper:
    name = "leaked_tokens"

    def __init__(self, special_texts: list[str]) -> None:
        specials = {s for s in special_texts if s and s[0] in "<["}
        self.markers = tuple(sorted(specials | set(TURN_MARKERS), key=len, reverse=True))
        self.ends = set(TURN_MARKERS)
        self.stop = False
        self._buf = ""
        self._stripped: list[str] = []
        self._ended_at: str | None = None

    def feed(self, text: str, tokens_left: int) -> str:
        if self.stop:
            return ""
        buf, out = self._buf + text, []
        while "<" in buf or "[" in buf:
            hits = [(buf.find(m), m) for m in self.markers if m in buf]
            if not hits:
                break
            pos, marker = min(hits, key=lambda h: (h[0], -len(h[1])))
            out.append(buf[:pos])
            if marker in self.ends:
                self.stop, self._ended_at, self._buf = True, marker, ""
                return "".join(out).rstrip()
            self._stripped.append(marker)
            buf = buf[pos + len(marker) :]
        hold = _partial_marker(buf, self.markers)
        out.append(buf[: len(buf) - hold])
        self._buf = buf[len(buf) - hold :]
        return "".join(out)

    def finish(self, reason: str) -> str:
        out, self._buf = self._buf, ""
        return out

    def report(self) -> dict[str, Any]:
        return {"stripped": self._stripped, "ended_at_marker": self._ended_at}


def copies_needed(unit: int) -> int:
    """How many back-to-back copies of a span make a loop: short spans must repeat far more often."""
    if unit < 4:
        return 24
    if unit < 16:
        return 6
    return 3


class RepetitionCutter:
    """Holds back the tail while it repeats earlier text (it may be a loop starting); releases it when the
    text moves on; cuts to one copy when the tail is `copies_needed` back-to-back copies of one span."""

    name = "repetition"
    MIN_HOLD = 8  # repeated tails shorter than this are ordinary words
    MAX_UNIT = 256

    def __init__(self) -> None:
        self.stop = False
        self._text = ""
        self._emitted = 0
        self._repeat = 0  # length of the longest tail that also occurs earlier
        self._cut: dict[str, Any] | None = None

    def feed(self, text: str, tokens_left: int) -> str:
        if self.stop:
            return ""
        self._text += text
        self._repeat = self._repeated_tail(self._repeat + len(text))
        loop = self._loop()
        if loop is not None:
            unit, copies = loop
            keep = max(len(self._text) - (copies - 1) * unit, self._emitted)
            self._cut = {"unit": self._text[-unit:][:80], "unit_chars": unit, "copies": copies,
                         "chars_dropped": len(self._text) - keep}  # fmt: skip
            self._text = self._text[:keep]
            self.stop = True
            return self._release(len(self._text))
        hold = self._repeat if self._repeat >= self.MIN_HOLD else 0
        return self._release(max(len(self._text) - hold, self._emitted))

    def finish(self, reason: str) -> str:
        return self._release(len(self._text))

    def report(self) -> dict[str, Any]:
        return {"loop_cut": self._cut}

    def _release(self, upto: int) -> str:
        out = self._text[self._emitted : upto]
        self._emitted = upto
        return out

    def _repeated_tail(self, upper: int) -> int:
        """Longest L ≤ upper whose tail text[-L:] occurs earlier. Monotone in L, so binary search."""
        text = self._text
        lo, hi = 0, min(upper, len(text) - 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if text.find(text[-mid:], 0, len(text) - 1) >= 0:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _loop(self) -> tuple[int, int] | None:
        if self._repeat < self.MIN_HOLD:
            return None
        text = self._text
        for unit in range(1, min(self.MAX_UNIT, self._repeat) + 1):
            copies = copies_needed(unit)
            if (copies - 1) * unit > self._repeat:
                continue
            if text.endswith(text[-unit:] * copies):
                return unit, copies
        return None


def in_code_block(text: str) -> bool:
    return sum(1 for line in text.split("\n") if FENCE.match(line)) % 2 == 1


class TruncationTrimmer:
    """Near the end of the token budget, holds the text back; if the budget then cuts the answer off,
    trims it to the last complete sentence (or the last complete line inside code)."""

    name = "truncation"
    WINDOW_TOKENS = 32

    def __init__(self) -> None:
        self.stop = False
        self._seen: list[str] = []
        self._held = ""
        self._holding = False
        self._trimmed: str | None = None

    def feed(self, text: str, tokens_left: int) -> str:
        self._holding = self._holding or tokens_left <= self.WINDOW_TOKENS
        if not self._holding:
            self._seen.append(text)
            return text
        self._held += text
        return ""

    def finish(self, reason: str) -> str:
        held, self._held = self._held, ""
        if reason not in ("length", "loop") or not held.strip():
            return held
        if in_code_block("".join(self._seen) + held):
            cut = held.rfind("\n") + 1
        else:
            ends = [m.end() for m in SENTENCE_END.finditer(held.rstrip())]
            cut = ends[-1] if ends else 0
        if cut and held[cut:].strip():
            self._trimmed = held[cut:]
            return held[:cut].rstrip()
        return held

    def report(self) -> dict[str, Any]:
        return {"trimmed": self._trimmed, "flagged": self._trimmed is not None}


class FenceCloser:
    name = "fences"

    def __init__(self) -> None:
        self.stop = False
        self._line = ""
        self._open = False
        self._last = ""
        self._closed = False

    def feed(self, text: str, tokens_left: int) -> str:
        if text:
            *complete, self._line = (self._line + text).split("\n")
            for line in complete:
                self._open ^= bool(FENCE.match(line))
            self._last = text[-1]
        return text

    def finish(self, reason: str) -> str:
        is_open = self._open ^ bool(FENCE.match(self._line))
        if not is_open:
            return ""
        self._closed = True
        return ("" if self._last in ("\n", "") else "\n") + "```"

    def report(self) -> dict[str, Any]:
        return {"closed_fence": self._closed}
