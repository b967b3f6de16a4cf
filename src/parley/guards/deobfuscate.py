"""Undo the tricks that hide an instruction from a scanner: confusable letters, zero-width characters,
leetspeak, letter spacing, and base64 / hex / rot13 payloads. Scanners then see every readable variant."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

# Letters from other scripts that look like Latin ones (a subset of Unicode's confusables that attacks use).
CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "α": "a", "ο": "o", "ρ": "p", "ν": "v", "τ": "t", "ι": "i", "κ": "k", "Ι": "I", "Ο": "O",
})  # fmt: skip
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2062\u2063\u2064"), None)
LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s", "7": "t"})
LEET_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*[013457@$!])[\w@$!]{3,}\b", re.I)
SPACED = re.compile(r"\b(?:[A-Za-z] ){4,}[A-Za-z]\b")
B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{12,}={0,2}(?![A-Za-z0-9+/=])")
HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}){8,}\b")
COMMON = {"the", "you", "and", "all", "your", "ignore", "previous", "instructions", "system", "prompt", "to",
          "is", "of", "a", "print", "reveal", "now", "rules", "tell", "me", "password", "secret"}  # fmt: skip


def normalize(text: str) -> str:
    """NFKC (full-width and styled letters become plain), confusables mapped, invisibles removed."""
    return unicodedata.normalize("NFKC", text).translate(INVISIBLE).translate(CONFUSABLES)


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in text)
    return text if text and printable / len(text) > 0.95 and re.search(r"[A-Za-z]{3}", text) else None


def _english_score(text: str) -> int:
    return sum(w in COMMON for w in re.findall(r"[a-z]+", text.lower()))


def variants(text: str) -> list[str]:
    """The normalised text, then any decoded readings that differ from it (deduplicated, in order)."""
    base = normalize(text)
    out = [base]
    de_leet = LEET_WORD.sub(lambda m: m.group().translate(LEET), base)
    out.append(de_leet)
    out.append(SPACED.sub(lambda m: m.group().replace(" ", ""), base))
    rot = codecs.encode(base, "rot13")
    if _english_score(rot) > _english_score(base) or re.search(r"\brot-?13\b", base, re.I):
        out.append(rot)
    for m in B64.finditer(base):
        chunk = m.group()
        try:
            decoded = _readable(base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=False))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded:
            out.append(normalize(decoded))
    for m in HEX.finditer(base):
        decoded = _readable(bytes.fromhex(m.group()))
        if decoded:
            out.append(normalize(decoded))
    return list(dict.fromkeys(out))
