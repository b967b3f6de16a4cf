"""Fenced code blocks as CommonMark defines them, in one place: normalisation, the clean-up filters and the
HTML sanitiser all judge "inside code" with these.

- An opening fence is a line of at most 3 spaces of indentation, then 3 or more backticks or 3 or more tildes,
  then an info string (which, for a backtick fence, may not contain a backtick).
- The block ends at a line of at most 3 spaces, then the same character at least as many times, then only
  spaces or tabs; or at the end of the text.

Fences inside list items that are indented 4 or more spaces are not seen as fences here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_MAY_GROW_INTO_FENCE = re.compile(r" {0,3}(`{0,2}|~{0,2})")


@dataclass(frozen=True)
class Fence:
    char: str  # "`" or "~"
    length: int

    def closed_by(self, line: str) -> bool:
        m = _FENCE.fullmatch(line.rstrip("\r"))
        return bool(m and m.group(1)[0] == self.char and len(m.group(1)) >= self.length and not m.group(2).strip())

    @property
    def closer(self) -> str:
        return self.char * self.length


def fence_opened_by(line: str) -> Fence | None:
    """The fence a (complete) line opens, if it opens one."""
    m = _FENCE.fullmatch(line.rstrip("\r"))
    if m is None or (m.group(1)[0] == "`" and "`" in m.group(2)):
        return None
    return Fence(m.group(1)[0], len(m.group(1)))


def undecided(partial_line: str) -> bool:
    """Whether an incomplete last line may still turn out to be a fence line: it may grow into one, or it has
    the fence's characters and the rest of the line (an info string, or trailing text) decides."""
    return bool(_MAY_GROW_INTO_FENCE.fullmatch(partial_line) or _FENCE.match(partial_line))


class FenceTracker:
    """Fed complete lines in order; knows whether the text is inside a fenced code block."""

    def __init__(self) -> None:
        self.open: Fence | None = None

    def feed(self, line: str) -> bool:
        """Take one line; whether it belongs to code (fence lines included)."""
        if self.open is not None:
            if self.open.closed_by(line):
                self.open = None
            return True
        self.open = fence_opened_by(line)
        return self.open is not None


def open_fence(text: str) -> Fence | None:
    """The fence left open at the end of `text` (its last line counted as complete), if any."""
    tracker = FenceTracker()
    for line in text.split("\n"):
        tracker.feed(line)
    return tracker.open
