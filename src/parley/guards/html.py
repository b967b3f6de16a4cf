"""HTML/JS sanitising of markdown that a page will render: raw tags outside code are cleaned with nh3
(scripts, event handlers and styles go; harmless formatting stays), and `javascript:`/`data:` link targets
are neutralised; with a `LinkPolicy`, images and links to hosts outside its allowlist are removed or defanged
(`links.py`). Code blocks and inline code are left exactly as written."""

from __future__ import annotations

import re
from typing import Any

import nh3

from parley.guards.links import LinkPolicy, defuse_links
from parley.markdown import Fence, fence_opened_by, undecided

TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)([^<>]{0,500})>|<!--[\s\S]*?-->")
DANGEROUS_BLOCK = re.compile(r"<(script|style|iframe|object|embed|svg|math|template)\b[\s\S]*?</\1\s*>", re.I)
UNSAFE_LINK = re.compile(r"\]\(\s*(?:javascript|vbscript|data):", re.I)
SAFE_TAGS = {"b", "i", "em", "strong", "code", "pre", "br", "p", "ul", "ol", "li", "sub", "sup", "kbd", "a"}
MAX_HOLD = 500
MAX_URL_HOLD = 2000
# a trailing run that is, or may still become, a URL: held until it ends, so it is judged whole
URL_TAIL = re.compile(r"(?:\S*://\S*|\b(?:h(?:t(?:t(?:p(?:s(?::/?)?|:/?)?)?)?)?|f(?:t(?:p(?::/?)?)?)?))$", re.I)


def _clean_tag(m: re.Match[str], links: LinkPolicy | None = None) -> str:
    """Allowed formatting tags keep only safe attributes (nh3 decides which); any other tag is dropped, and so
    is a link to a host outside the allowlist (its text stays)."""
    if m.group(2) is None or m.group(2).lower() not in SAFE_TAGS:
        return ""
    name = m.group(2).lower()
    if m.group(1):
        return f"</{name}>"
    if name == "a" and links is not None:
        href = re.search(r"""href\s*=\s*["']?([^"'\s>]+)""", m.group(), re.I)
        if href is not None and not links.allows(href.group(1)):
            return ""
    cleaned = nh3.clean(m.group(), tags=SAFE_TAGS, attributes={"a": {"href", "title"}},
                        url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")  # fmt: skip
    return cleaned.removesuffix(f"</{name}>")


def sanitize_markdown(text: str, links: LinkPolicy | None = None, html: bool = True) -> tuple[str, int]:
    """(clean text, number of changes) for text outside fenced code blocks (the streaming sanitiser splits
    those off); `inline code` spans are left as written."""
    out, changes = [], 0
    parts = re.split(r"(`[^`\n]+`)", text)
    for i, part in enumerate(parts):
        if i % 2 == 1:  # code: untouched
            out.append(part)
            continue
        cleaned = part
        if html:
            cleaned = DANGEROUS_BLOCK.sub("", cleaned)
            cleaned = TAG.sub(lambda m: _clean_tag(m, links), cleaned)
            cleaned = UNSAFE_LINK.sub("](#", cleaned)
        if links is not None:
            cleaned, _ = defuse_links(cleaned, links)
        changes += cleaned != part
        out.append(cleaned)
    return "".join(out), changes


class HtmlSanitizer:
    """Streaming form. Fenced code blocks (`parley.markdown`) stream through untouched; outside them only an
    unclosed tag, inline-code span or link target, or a last line that may still be a fence line, is held."""

    name = "html"

    def __init__(self, links: LinkPolicy | None = None, html: bool = True) -> None:
        self.links, self.html = links, html
        self.stop = False
        self._pending = ""
        self._fence: Fence | None = None  # the fence that opened the current code block
        self._line_start = True  # whether _pending begins at the start of a line
        self.changes = 0

    def _fence_line(self, text: str) -> tuple[int, int, Fence | None] | None:
        """(start, end, fence) of the first complete line in `text` that opens a fence (outside code) or closes
        the open one (inside code); `end` is past its newline."""
        pos = 0 if self._line_start else text.find("\n") + 1
        while pos > 0 or (pos == 0 and self._line_start):
            nl = text.find("\n", pos)
            if nl < 0:
                return None
            line = text[pos:nl]
            if self._fence is None and (fence := fence_opened_by(line)) is not None:
                return pos, nl + 1, fence
            if self._fence is not None and self._fence.closed_by(line):
                return pos, nl + 1, None
            pos = nl + 1
        return None

    def _hold(self, text: str) -> int:
        """Where a last, incomplete line that may still be a fence line starts (else the end of `text`)."""
        last = text.rfind("\n") + 1
        if last == 0 and not self._line_start:
            return len(text)
        return last if text[last:] and undecided(text[last:]) else len(text)

    def feed(self, text: str, tokens_left: int) -> str:
        self._pending += text
        out: list[str] = []
        while self._pending:
            found = self._fence_line(self._pending)
            if self._fence is not None:
                if found is None:
                    out.append(self._emit(self._pending[: self._hold(self._pending)], clean=False))
                    break
                out.append(self._emit(self._pending[: found[1]], clean=False))
                self._fence = None
                continue
            segment = self._pending if found is None else self._pending[: found[0]]
            cut = len(segment) if found is not None else self._safe_end(segment)
            out.append(self._emit(segment[:cut], clean=True))
            if found is None or cut < len(segment):
                break
            self._fence = found[2]
            out.append(self._emit(self._pending[: found[1] - found[0]], clean=False))
        return "".join(out)

    def _safe_end(self, segment: str) -> int:
        cut = self._hold(segment)
        if segment[:cut].endswith("]"):  # a link target may follow
            cut -= 1
        pairs = (("<", ">"), ("](", ")"), ("`", "`")) + ((("[", "]"),) if self.links is not None else ())
        for opener, closer in pairs:
            at = segment.rfind(opener, 0, cut)
            if at >= 0 and closer not in segment[at + len(opener) : cut] and cut - at < MAX_HOLD:
                cut = min(cut, at - 1 if opener == "[" and segment[at - 1 : at] == "!" else at)  # an image's "!"
        if self.links is not None and segment[:cut].endswith("!"):  # may open an image
            cut -= 1
        if self.links is not None and (url := URL_TAIL.search(segment, max(0, cut - MAX_URL_HOLD), cut)):
            cut = min(cut, url.start())
        return cut

    def _emit(self, text: str, *, clean: bool) -> str:
        if not text:
            return ""
        self._pending = self._pending[len(text) :]
        self._line_start = text.endswith("\n")
        if not clean:
            return text
        cleaned, n = sanitize_markdown(text, self.links, self.html)
        self.changes += n
        return cleaned

    def finish(self, reason: str) -> str:
        rest = self._pending
        return self._emit(rest, clean=self._fence is None)

    def report(self) -> dict[str, Any]:
        return {"sanitized": self.changes}
