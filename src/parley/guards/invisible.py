"""Code points that carry text no reader sees ("ASCII smuggling"): Unicode tag characters (U+E0000–E007F, each
one an invisible copy of an ASCII character), variation selectors used as a byte channel, zero-width and
bidirectional controls. Models read them; people and most scanners don't. In what comes in (the `normalize`
step) a run of tag characters is replaced by the ASCII it spells, so the input guard and a reader see what the
model would have read, and the other code points are removed; from every answer that goes out (the model stage)
they are all removed."""

from __future__ import annotations

import re

# U+FE0F (emoji presentation) and U+200D (the zero-width joiner of emoji sequences) stay in answers.
SMUGGLING = re.compile(
    "[\U000e0000-\U000e007f\U000e0100-\U000e01ef\ufe00-\ufe0e\u200b\u200c\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\u061c\u180e]"
)
TAG_RUN = re.compile("[\U000e0020-\U000e007e]{2,}")


def strip_invisible(text: str) -> tuple[str, int]:
    """(text without smuggling code points, how many were removed)."""
    clean, n = SMUGGLING.subn("", text)
    return clean, n


def reveal(text: str) -> tuple[str, int, int]:
    """(text with each run of tag characters replaced by the ASCII it spells and the other smuggling code points
    removed, characters revealed, code points removed)."""
    revealed = 0

    def spell(m: re.Match[str]) -> str:
        nonlocal revealed
        revealed += len(m.group())
        return "".join(chr(ord(c) - 0xE0000) for c in m.group())

    text = TAG_RUN.sub(spell, text)
    clean, removed = strip_invisible(text)
    return clean, revealed, removed
