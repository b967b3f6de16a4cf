"""Output-side defences against data exfiltration through an answer that a page renders (issue 17): an
injected instruction can make a model write a markdown image whose URL carries the conversation to an outside
host, fetched by the browser with no click. So, outside code:
- images (`![alt](url)`) to a host outside the allowlist are removed (their alt text stays, marked);
- links (`[text](url)`, `<url>`, `[ref]: url`) to such a host keep their text and show the host only, defanged;
- bare URLs to such a host are defanged (`hxxps://host[.]tld/path`, query and fragment dropped), so that no
  renderer turns them into links.
Relative URLs (the page's own origin) are left as written. `ALLOWED` hosts come from the settings
(`link_allowlist`): a host, or `*.example.com` for its subdomains too."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IMAGE = re.compile(r"!\[([^\]\n]{0,500})\]\(\s*<?([^)\s>]{1,2000})>?(?:\s+\"[^\"\n]*\")?\s*\)")
LINK = re.compile(r"(?<!!)\[([^\]\n]{0,500})\]\(\s*<?([^)\s>]{1,2000})>?(?:\s+\"[^\"\n]*\")?\s*\)")
AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]{1,2000})>", re.I)
REFERENCE = re.compile(r"^( {0,3}\[[^\]\n]{1,200}\]:\s*)<?(\S{1,2000}?)>?(\s+\"[^\"\n]*\")?[ \t]*$", re.M)
BARE = re.compile(r"\b(?:https?|ftp)://[^\s<>()\[\]\"'`]{1,2000}", re.I)


@dataclass
class LinkPolicy:
    allowed: list[str] = field(default_factory=list)

    def allows(self, url: str) -> bool:
        try:
            parts = urlsplit(url.strip())
        except ValueError:
            return False
        if not parts.scheme and not parts.netloc:
            return not url.strip().startswith("//")  # relative: the page's own origin
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme.lower() not in ("http", "https") or not host:
            return parts.scheme.lower() == "mailto"
        for pattern in self.allowed:
            pattern = pattern.lower()
            if pattern.startswith("*."):
                if host == pattern[2:] or host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False


def defang(url: str) -> str:
    """`https://evil.example/p?q=1` → `hxxps://evil[.]example/p`: readable, never a link, without the query that
    would carry data."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "[link removed]"
    host = (parts.hostname or "").replace(".", "[.]")
    scheme = parts.scheme.lower().replace("http", "hxxp").replace("ftp", "fxp")
    return f"{scheme}://{host}{parts.path}" if host else "[link removed]"


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "?").replace(".", "[.]")
    except ValueError:
        return "?"


# (pattern, the group holding the URL, what a match to an outside host becomes)
RULES: list[tuple[re.Pattern[str], int, Callable[[re.Match[str]], str]]] = [
    (IMAGE, 2, lambda m: f"[image removed: {m.group(1)}]" if m.group(1) else "[image removed]"),
    (LINK, 2, lambda m: f"{m.group(1)} ({host_of(m.group(2))})"),
    (AUTOLINK, 1, lambda m: defang(m.group(1))),
    (REFERENCE, 2, lambda m: f"{m.group(1)}{defang(m.group(2))}"),
]


def defuse_links(text: str, policy: LinkPolicy) -> tuple[str, int]:
    """(text, changes) for markdown outside code (the caller splits code off)."""
    changes = 0

    def rule(group: int, replace: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        def sub(m: re.Match[str]) -> str:
            nonlocal changes
            if policy.allows(m.group(group)):
                return m.group()
            changes += 1
            return replace(m)

        return sub

    def bare(m: re.Match[str]) -> str:
        nonlocal changes
        url = m.group().rstrip(".,;:!?")
        if policy.allows(url):
            return m.group()
        changes += 1
        return defang(url) + m.group()[len(url) :]

    for pattern, group, replace in RULES:
        text = pattern.sub(rule(group, replace), text)
    return BARE.sub(bare, text), changes
