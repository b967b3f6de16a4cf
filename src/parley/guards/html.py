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
FENCE = re.compile(r"^\s*(```|~~~)", re.M)
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
    """(clean text, number of changes). Only the parts outside fenced code and `inline code` are touched."""
    out, changes = [], 0
    parts = re.split(r"(```[\s\S]*?(?:```|$)|`[^`\n]*`)", text)
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
    """Streaming form. Code blocks stream through untouched; outside them it holds back only an unclosed
    tag, inline-code span or link target until it is complete."""

    name = "html"

    def __init__(self) -> None:
        self.stop = False
        self._pending = ""
        self._in_code = False
        self.changes = 0

    def feed(self, text: str, tokens_left: int) -> str:
        self._pending += text
        out: list[str] = []
        while self._pending:
            if self._in_code:
                close = self._pending.find("```")
                if close < 0:
                    keep = len(self._pending.rstrip("`"))  # a trailing backtick may start the closing fence
                    out.append(self._pending[:keep])
                    self._pending = self._pending[keep:]
                    break
                out.append(self._pending[: close + 3])
                self._pending, self._in_code = self._pending[close + 3 :], False
                continue
            fence = self._pending.find("```")
            segment = self._pending if fence < 0 else self._pending[:fence]
            cut = self._safe_end(segment, final=fence >= 0)
            out.append(self._clean(segment[:cut]))
            self._pending = self._pending[cut:]
            if fence < 0 or cut < len(segment):
                break
            out.append("```")
            self._pending, self._in_code = self._pending[3:], True
        return "".join(out)

    def _safe_end(self, segment: str, *, final: bool) -> int:
        cut = len(segment) if final else len(segment.rstrip("`"))
        if segment[:cut].endswith("]"):  # a link target may follow
            cut -= 1
        for opener, closer in (("<", ">"), ("](", ")"), ("`", "`")):
            at = segment.rfind(opener, 0, cut)
            if at >= 0 and closer not in segment[at + len(opener) : cut] and cut - at < MAX_HOLD:
                cut = min(cut, at)
        return cut

    def finish(self, reason: str) -> str:
        rest, self._pending = self._pending, ""
        return rest if self._in_code else self._clean(rest)

    def report(self) -> dict[str, Any]:
        return {"sanitized": self.changes}

    def _clean(self, text: str) -> str:
        if not text:
            return ""
        clean, n = sanitize_markdown(text)
        self.changes += n
        return clean
