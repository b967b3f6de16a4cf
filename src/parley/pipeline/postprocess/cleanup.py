"""Incremental clean-up filters for what small models get wrong. Each sees the answer piece by piece and
holds back only what it may still need to change, so a streamed answer and a whole one end identically.

- `LeakedTokenStripper`: chat-template tokens that leak as text; a turn marker ends the answer.
- `RepetitionCutter`: degenerate loops (the same span again and again) are cut to one copy.
- `TruncationTrimmer`: a sentence cut off by max_tokens is trimmed back to the last full sentence.
- `FenceCloser`: an unclosed code fence is closed with its own fence.
"""

from __future__ import annotations

import re
from typing import Any

from parley.markdown import FenceTracker, open_fence

# Markers that open or close a turn in common chat templates: if the model writes one, its answer is over.
TURN_MARKERS = (
    "<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "<|end|>",
    "<|user|>", "<|assistant|>", "<|system|>", "</s>", "<end_of_turn>", "<start_of_turn>", "[INST]", "[/INST]",
)  # fmt: skip
SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]*_]*)(?=\s|$)|\n")
ENDS_COMPLETE = re.compile(r"([.!?…][\"')\]*_]*|```)$")


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
    stop_reason = "loop"  # later filters finish knowing the text was cut, not complete
    MIN_HOLD = 1  # any tail seen before is held until the text moves on (usually the next token)
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
            keep = max(self._one_copy_end(*loop), self._emitted)
            unit = loop[0]
            self._cut = {"unit": self._text[-unit:][:80], "unit_chars": unit, "copies": loop[1],
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

    def _one_copy_end(self, unit: int, copies: int) -> int:
        """Where one copy of the loop ends: one period after the periodic run really starts (the detected
        unit may be a rotation or a multiple of the smallest one), moved on to the next sentence end or
        space inside the second copy so the cut falls at a natural boundary."""
        text = self._text
        tail = text[-unit:]
        period = next(p for p in range(1, unit + 1) if unit % p == 0 and tail == tail[:p] * (unit // p))
        start = len(text) - unit * copies
        while start > 0 and text[start - 1] == text[start - 1 + period]:
            start -= 1
        end = start + period
        window = text[end - 1 : start + 2 * period]
        for marks in (".!?\n", " \t"):
            hit = next((i for i, ch in enumerate(window) if ch in marks), None)
            if hit is not None:
                return end + hit
        return end

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


class TruncationTrimmer:
    """In the last `WINDOW_TOKENS` of the budget, holds back the text after the last complete sentence (the
    last complete line inside code); if the budget then cuts the answer off, that fragment is dropped."""

    name = "truncation"
    WINDOW_TOKENS = 24

    def __init__(self) -> None:
        self.stop = False
        self._seen: list[str] = []
        self._held = ""
        self._holding = False
        self._released_at_boundary = False
        self._trimmed: str | None = None

    def feed(self, text: str, tokens_left: int) -> str:
        self._holding = self._holding or tokens_left <= self.WINDOW_TOKENS
        if not self._holding:
            self._seen.append(text)
            return text
        self._held += text
        cut = self._last_boundary(self._held)
        if cut == 0:
            return ""
        out, self._held = self._held[:cut], self._held[cut:]
        self._seen.append(out)
        self._released_at_boundary = True
        return out

    def _last_boundary(self, held: str) -> int:
        """End of the last complete sentence (or code line) in `held` that is followed by more text."""
        if open_fence("".join(self._seen) + held) is not None:
            return held.rfind("\n") + 1
        ends = [m.end() for m in SENTENCE_END.finditer(held) if m.end() < len(held)]
        return ends[-1] if ends else 0

    def finish(self, reason: str) -> str:
        held, self._held = self._held, ""
        complete = not held.strip() or bool(ENDS_COMPLETE.search(held.rstrip()))
        if reason in ("length", "loop") and not complete and self._released_at_boundary:
            self._trimmed = held
            return ""
        return held

    def report(self) -> dict[str, Any]:
        return {"trimmed": self._trimmed, "flagged": self._trimmed is not None}


class FenceCloser:
    """Closes a code fence the answer left open, with the fence that opened it (``` or ~~~, as long)."""

    name = "fences"

    def __init__(self) -> None:
        self.stop = False
        self._line = ""
        self._tracker = FenceTracker()
        self._last = ""
        self._closed: str | None = None

    def feed(self, text: str, tokens_left: int) -> str:
        if text:
            *complete, self._line = (self._line + text).split("\n")
            for line in complete:
                self._tracker.feed(line)
            self._last = text[-1]
        return text

    def finish(self, reason: str) -> str:
        self._tracker.feed(self._line)
        fence = self._tracker.open
        if fence is None:
            return ""
        self._closed = fence.closer
        return ("" if self._last in ("\n", "") else "\n") + fence.closer

    def report(self) -> dict[str, Any]:
        return {"closed_fence": self._closed is not None, "closer": self._closed}
