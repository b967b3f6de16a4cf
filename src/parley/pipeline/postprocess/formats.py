"""The formatters: one per profile output format, each a streaming filter that works line by line (it holds
back at most the current line), leaves code blocks as they are, and lists what it changed in the trace.

- `DocsFormatter`: documentation. A `# ` title (from the question when the answer has none), the first
  paragraph under `## Summary` and what follows under `## Details` when the answer brings no headings of its
  own, one `# ` title only (later ones become `## `), bullets normalised to `- ` and `1.`.
- `ChatFormatter`: chat stays short: the answer ends after `max_paragraphs` blocks (a list or a code block is
  one block), and generation is stopped there.
- `PlainFormatter`: plain text. Markdown is taken out: heading marks, emphasis, inline-code ticks, fences
  (their code kept), links (`text (url)`), images (their alt text), quotes and rules.

JSON needs no formatter: a `json` profile's answer is shaped by constrained decoding, never repaired.
"""

from __future__ import annotations

import re
from typing import Any

from parley.markdown import FenceTracker

BULLET = re.compile(r"^(\s*)[*+•·‣◦–](\s+)")
NUMBERED = re.compile(r"^(\s*)(\d{1,3})\)(\s+)")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
TITLE_MAX = 80


class LineFilter:
    """A filter that sees whole lines: `line(text, code)` gets each line without its newline and whether it
    is inside (or is) a fence, and returns what to emit in its place (None: drop the line). `fence_line` says
    whether that line opened or closed a fence."""

    name = "format"

    def __init__(self) -> None:
        self.stop = False
        self._partial = ""
        self._fences = FenceTracker()
        self.fence_line = False
        self.changes: list[str] = []

    def line(self, text: str, code: bool) -> str | None:
        return text

    def feed(self, text: str, tokens_left: int) -> str:
        if self.stop:
            return ""
        *complete, self._partial = (self._partial + text).split("\n")
        out = []
        for line in complete:
            if self.stop:
                break
            shown = self.line(line, self._track(line))
            if shown is not None:
                out.append(shown + "\n")
        return "".join(out)

    def finish(self, reason: str) -> str:
        tail, self._partial = self._partial, ""
        if not tail or self.stop:
            return ""
        shown = self.line(tail, self._track(tail))
        return shown or ""

    def _track(self, line: str) -> bool:
        was_open = self._fences.open is not None
        code = self._fences.feed(line)
        self.fence_line = code and (self._fences.open is not None) != was_open
        return code

    def report(self) -> dict[str, Any]:
        return {"changes": self.changes[:20], "changed": len(self.changes)}


def title_from(question: str) -> str:
    """A title made from the question: its first line, without the end punctuation, at most 80 characters."""
    first = next((ln.strip() for ln in question.splitlines() if ln.strip()), "Answer")
    first = re.sub(r"^[#>*\-\s]+", "", first).rstrip(" ?.!:;") or "Answer"
    if len(first) > TITLE_MAX:
        first = first[:TITLE_MAX].rsplit(" ", 1)[0] + "…"
    return first[0].upper() + first[1:]


class DocsFormatter(LineFilter):
    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question
        self.titled = False  # a `# ` title was emitted
        self.headings = 0  # `##`… headings seen or added
        self.blocks = 0  # prose blocks begun after the title
        self._blank = True  # the previous line was blank (a new block begins)
        self._labelled = False  # the summary heading was added

    def line(self, text: str, code: bool) -> str | None:
        out: list[str] = []
        if not self.titled and text.strip():
            self.titled = True
            m = HEADING.match(text)
            if m and len(m.group(1)) == 1:
                self._blank = True
                return text
            out += [f"# {title_from(self.question)}", ""]
            self.changes.append("title added")
        if code:
            if self._blank and text.strip():
                self._begin_block(out)
            self._blank = False
            return "\n".join([*out, text])
        m = HEADING.match(text)
        if m:
            if len(m.group(1)) == 1:
                text = f"## {m.group(2)}"
                self.changes.append("second title made a heading")
            self.headings += 1
            self._blank = True
            return "\n".join([*out, text])
        if not text.strip():
            self._blank = True
            return "\n".join([*out, text])
        if self._blank:
            self._begin_block(out)
        self._blank = False
        fixed = NUMBERED.sub(r"\1\2.\3", BULLET.sub(r"\1-\2", text))
        if fixed != text:
            self.changes.append("bullet normalised")
        return "\n".join([*out, fixed])

    def _begin_block(self, out: list[str]) -> None:
        """A block of prose, a list or code begins: label the first two when the answer has no headings."""
        self.blocks += 1
        if self.headings == 0 and self.blocks == 1:
            out += ["## Summary", ""]
            self.changes.append("summary heading added")
            self._labelled = True
        elif self.blocks == 2 and self._labelled and self.headings == 0:
            out += ["## Details", ""]
            self.headings += 1
            self.changes.append("details heading added")


class ChatFormatter(LineFilter):
    stop_reason = "stop"

    def __init__(self, max_paragraphs: int) -> None:
        super().__init__()
        self.max_paragraphs = max_paragraphs
        self.blocks = 0
        self._blank = True
        self._in_list = False
        self._held = 0  # blank lines held back: sent before the next line, dropped where the answer ends

    def line(self, text: str, code: bool) -> str | None:
        if not text.strip() and not code:
            self._blank = True
            self._held += 1
            return None
        held, self._held = "\n" * self._held, 0
        shown = self._line(text, code)
        return None if shown is None else held + shown

    def _line(self, text: str, code: bool) -> str | None:
        item = bool(LIST_ITEM.match(text)) and not code
        continues = self._in_list and item  # a list's items, blank lines between them or not, are one block
        if self._blank and not continues:
            self.blocks += 1
            if self.blocks > self.max_paragraphs:
                self.stop = True
                self.changes.append(f"ended after {self.max_paragraphs} paragraphs")
                return None
        self._blank = False
        self._in_list = item or (self._in_list and text.startswith((" ", "\t")))
        return text

    def feed(self, text: str, tokens_left: int) -> str:
        out = super().feed(text, tokens_left)
        return out.rstrip() if self.stop else out

    def report(self) -> dict[str, Any]:
        return {"max_paragraphs": self.max_paragraphs, "paragraphs": min(self.blocks, self.max_paragraphs),
                "cut": self.stop}  # fmt: skip


EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
IMAGE = re.compile(r"!\[([^\]]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")


def _link(m: re.Match[str]) -> str:
    text, url = m.group(1), m.group(2)
    return text if text == url else f"{text} ({url})"


class PlainFormatter(LineFilter):
    def line(self, text: str, code: bool) -> str | None:
        if code:
            if self.fence_line:
                self.changes.append("fence removed")
                return None
            return text
        original = text
        if RULE.match(text):
            self.changes.append("rule removed")
            return ""
        if m := HEADING.match(text):
            text = m.group(2).rstrip("# ").rstrip()
        text = re.sub(r"^(\s*)>\s?", r"\1", text)
        text = BULLET.sub(r"\1-\2", text)
        text = self._inline(text)
        if text != original:
            self.changes.append("markdown removed")
        return text

    @staticmethod
    def _inline(text: str) -> str:
        # code spans first, kept verbatim: emphasis marks inside them are code
        parts = INLINE_CODE.split(text)
        out = []
        for i in range(0, len(parts), 3):
            prose = IMAGE.sub(r"\1", parts[i])
            prose = LINK.sub(_link, prose)
            prose = EMPHASIS.sub(lambda m: m.group(2) or m.group(3), prose)
            out.append(prose)
            if i + 2 < len(parts):
                out.append(parts[i + 2])
        return "".join(out)
