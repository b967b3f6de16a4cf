"""HTML/JS sanitising of markdown that a page will render: raw tags outside code are cleaned with nh3
(scripts, event handlers and styles go; harmless formatting stays), and `javascript:`/`data:` link targets
are neutralised. Code blocks and inline code are left exactly as written."""

from __future__ import annotations

import re
from typing import Any

import nh3

TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)([^<>]{0,500})>|<!--[\s\S]*?-->")
DANGEROUS_BLOCK = re.compile(r"<(script|style|iframe|object|embed|svg|math|template)\b[\s\S]*?</\1\s*>", re.I)
UNSAFE_LINK = re.compile(r"\]\(\s*(?:javascript|vbscript|data):", re.I)
FENCE = re.compile(r"^ {0,3}(```|~~~)", re.M)  # CommonMark: a fence starts a line
SAFE_TAGS = {"b", "i", "em", "strong", "code", "pre", "br", "p", "ul", "ol", "li", "sub", "sup", "kbd", "a"}
MAX_HOLD = 500


def _clean_tag(m: re.Match[str]) -> str:
    """Allowed formatting tags keep only safe attributes (nh3 decides which); any other tag is dropped."""
    if m.group(2) is None or m.group(2).lower() not in SAFE_TAGS:
        return ""
    name = m.group(2).lower()
    if m.group(1):
        return f"</{name}>"
    cleaned = nh3.clean(m.group(), tags=SAFE_TAGS, attributes={"a": {"href", "title"}},
                        url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")  # fmt: skip
    return cleaned.removesuffix(f"</{name}>")


def sanitize_markdown(text: str) -> tuple[str, int]:
    """(clean text, number of changes) for text outside fenced code blocks (the streaming sanitiser splits
    those off); `inline code` spans are left as written."""
    out, changes = [], 0
    parts = re.split(r"(`[^`\n]+`)", text)
    for i, part in enumerate(parts):
        if i % 2 == 1:  # code: untouched
            out.append(part)
            continue
        cleaned = DANGEROUS_BLOCK.sub("", part)
        cleaned = TAG.sub(_clean_tag, cleaned)
        cleaned = UNSAFE_LINK.sub("](#", cleaned)
        changes += cleaned != part
        out.append(cleaned)
    return "".join(out), changes


class HtmlSanitizer:
    """Streaming form. Fenced code blocks (a fence starts a line) stream through untouched; outside them only
    an unclosed tag, inline-code span or link target, or a line that may become a fence, is held back."""

    name = "html"

    def __init__(self) -> None:
        self.stop = False
        self._pending = ""
        self._fence: str | None = None  # the fence that opened the current code block
        self._line_start = True  # whether _pending begins at the start of a line
        self.changes = 0

    def _find_fence(self, text: str, kind: str | None) -> re.Match[str] | None:
        pattern = FENCE if kind is None else re.compile(rf"^ {{0,3}}{re.escape(kind)}", re.M)
        for m in pattern.finditer(text):
            if m.start() > 0 or self._line_start:
                return m
        return None

    def feed(self, text: str, tokens_left: int) -> str:
        self._pending += text
        out: list[str] = []
        while self._pending:
            if self._fence is not None:
                close = self._find_fence(self._pending, self._fence)
                if close is None:
                    keep = self._hold_partial_fence(self._pending)
                    out.append(self._emit(self._pending[:keep], clean=False))
                    break
                out.append(self._emit(self._pending[: close.end()], clean=False))
                self._fence = None
                continue
            fence = self._find_fence(self._pending, None)
            segment = self._pending if fence is None else self._pending[: fence.start()]
            cut = len(segment) if fence is not None else self._safe_end(segment)
            out.append(self._emit(segment[:cut], clean=True))
            if fence is None or cut < len(segment):
                break
            self._fence = fence.group(1)
            out.append(self._emit(self._pending[: fence.end() - fence.start()], clean=False))
        return "".join(out)

    @staticmethod
    def _hold_partial_fence(text: str) -> int:
        """Hold a last line that could still grow into a fence (spaces, then up to two backticks/tildes)."""
        last = text.rfind("\n") + 1
        return last if re.fullmatch(r" {0,3}(`{1,2}|~{1,2})?", text[last:]) and text[last:] else len(text)

    def _safe_end(self, segment: str) -> int:
        cut = self._hold_partial_fence(segment)
        if segment[:cut].endswith("]"):  # a link target may follow
            cut -= 1
        for opener, closer in (("<", ">"), ("](", ")"), ("`", "`")):
            at = segment.rfind(opener, 0, cut)
            if at >= 0 and closer not in segment[at + len(opener) : cut] and cut - at < MAX_HOLD:
                cut = min(cut, at)
        return cut

    def _emit(self, text: str, *, clean: bool) -> str:
        if not text:
            return ""
        self._pending = self._pending[len(text) :]
        self._line_start = text.endswith("\n")
        if not clean:
            return text
        cleaned, n = sanitize_markdown(text)
        self.changes += n
        return cleaned

    def finish(self, reason: str) -> str:
        rest = self._pending
        return self._emit(rest, clean=self._fence is None)

    def report(self) -> dict[str, Any]:
        return {"sanitized": self.changes}
