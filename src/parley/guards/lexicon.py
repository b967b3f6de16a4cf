"""Offensive words in 28 languages (the LDNOOBW lists, data/ldnoobw/): a cheap trigger for the output guard.

A word list alone over-blocks (a medical answer names body parts) and a classifier alone must hold every
sentence until it ends before it may leave. Together: text streams at once, and only a sentence in which one of
these words appears is held to its end and judged by the classifier.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from functools import lru_cache
from pathlib import Path

from parley.guards.scripts import UNSPACED

DIR = Path(__file__).parent / "data" / "ldnoobw"
UNSPACED_LISTS = {"ja", "zh", "th"}  # scripts written without spaces between words: matched anywhere


WORD = re.compile(r"\w+")


@lru_cache(maxsize=1)
def lexicon() -> tuple[frozenset[str], int, tuple[str, ...]]:
    """(entries of the spaced languages as lowercase words joined by single spaces, the most words in one,
    entries of the unspaced scripts)."""
    spaced: set[str] = set()
    unspaced: set[str] = set()
    for path in DIR.iterdir():
        if path.name.isupper() or path.suffix:  # LICENSE, SOURCE.md
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if path.name in UNSPACED_LISTS and len(line.strip()) > 1:
                unspaced.add(line.strip())
            elif words := WORD.findall(line.lower()):
                spaced.add(" ".join(words))
    return frozenset(spaced), max(e.count(" ") + 1 for e in spaced), tuple(sorted(unspaced))


def first_hit(text: str) -> int:
    """Where the first listed word starts, or -1. A set lookup per word and phrase: about a microsecond a word."""
    spaced, longest, unspaced = lexicon()
    words = list(WORD.finditer(text.lower()))
    for i, match in enumerate(words):
        for n in range(1, min(longest, len(words) - i) + 1):
            if " ".join(w.group() for w in words[i : i + n]) in spaced:
                return match.start()
    if UNSPACED.search(text):
        hits = [at for w in unspaced if (at := text.find(w)) >= 0]
        if hits:
            return min(hits)
    return -1


@lru_cache(maxsize=1)
def _sorted_spaced() -> tuple[str, ...]:
    return tuple(sorted(lexicon()[0]))


def may_become_listed(word: str) -> bool:
    """Whether a listed entry of the spaced languages starts with `word` (a word still being written may become
    one: "Tw" → "twat")."""
    entries, w = _sorted_spaced(), word.lower()
    i = bisect_left(entries, w)
    return i < len(entries) and entries[i].startswith(w)
