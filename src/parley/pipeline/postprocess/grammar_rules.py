"""The grammar pass's rules over one piece of prose (a sentence, or the rest of a line).

What must never change is masked first: inline code, URLs, e-mail addresses, link targets, HTML tags and
`$math$` each become one private-use character, so no rule can see into them or match across them. The rules
then run in order on the masked text, each recording what it changed:

1. punctuation: `,,` → `,`, `..` → `.` (never `...`), a missing space after `,` `;` `.` before a word;
2. spacing: spaces before `, . ; : ! ?` dropped, runs of spaces between words made one;
3. capital: a lowercase "i" used as the pronoun ("i think", "i'm") → "I";
4. doubled words: "the the" → "the", except doubles English uses ("had had", "that that");
5. spelling: `grammar_spelling.correction`, on plain words only (see `WORD`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import parley.pipeline.postprocess.grammar_spelling as grammar_spelling
from parley.pipeline.postprocess.grammar_spelling import word_set

MASK = "\ue000"  # stands for a protected span that is part of the text around it (code, a URL)
TAG_MASK = "\ue001"  # stands for an HTML tag or comment: a boundary between words, like a space
HTML = r"<!--.*?-->|</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>"  # a tag or a comment
TAG = re.compile(HTML)
PROTECTED = re.compile(
    r"(`+)(?:(?!\1).)+?\1(?!`)"  # inline code, closed by a run of as many backticks
    r"|<(?:https?|mailto|ftp):[^>\s]*>|"  # autolinks
    + HTML
    + r"|\]\([^)\s]*(?:\s+\"[^\"]*\")?\)"  # a markdown link's target
    r"|\b(?:https?|ftp|file|ssh|git|wss?)://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]"  # URLs, less closing punctuation
    r"|\bwww\.[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|\$(?=\S)[^$\n]*?(?<=\S)\$"  # $inline math$
)
# A plain word: letters only, not joined to anything that makes it part of a name, path or identifier.
WORD = re.compile(r"(?<![\w'’\-./\\@#$%&+=<>~^|\ue000])[A-Za-z]+(?![\w'’\-/\\@#$%&+=<>~^|\ue000]|\.\w)")
SENTENCE_END_BEFORE = re.compile(r"(?:[.!?:]|^\s*(?:[-*+]|\d+[.)]|#{1,6}|>)+)[\s*_\"'“‘(\[]*$")
OPENERS = " \t*_\"'“‘([\ue001"
LEGIT_DOUBLES = word_set(
    "had that is do did does can will bye ha haha no yes so very really well now there go blah la na ho oh "
    "hey knock tick tock bang boom beep chop hush tut dum ta ma pa pom yada"
)
PRONOUN_FOLLOWERS = (
    "am|was|have|had|will|would|can|could|should|must|might|may|think|thought|believe|hope|know|knew|mean|guess|"
    "feel|felt|need|want|wanted|see|saw|just|also|really|do|did|don't|didn't|can't|won't|recommend|suggest|prefer|"
    "like|love|use|used|tried|found|understand|apologize|apologise|agree|disagree|personally|usually|often"
)
PRONOUN_I = re.compile(rf"(?<![\w'’\-./\\\ue000])i(?=['’](?:m|ve|ll|d)\b|\s+(?:{PRONOUN_FOLLOWERS})\b)")
DOUBLED_WORD = re.compile(r"(?<![\w'’\-./\ue000])([A-Za-z]+)( +)(\1)(?![\w'’\-/\ue000]|\.\w)", re.IGNORECASE)
DOUBLED_PUNCT = re.compile(r"(?<=[A-Za-z\ue000)])(?:(,),|(;);|(\.)\.(?!\.))(?=\s|$)")
# after a word of two letters or more (not `a ? b : c`), a code span, a closing bracket, quote or emphasis
SPACE_BEFORE_PUNCT = re.compile(r"(?:(?<=[A-Za-z0-9]{2})|(?<=[\ue000)\]*_\"']))( +)([,;:!?]|\.(?!\.))(?=\s|$)")
MISSING_SPACE_COMMA = re.compile(r"(?<![^\s(\"'“])([A-Za-z]{2,})([,;])([A-Za-z]{2,})(?=[\s.!?:)]|$)")
MISSING_SPACE_STOP = re.compile(r"(?<![^\s(\"'“])([a-z]{2,})\.([A-Z][a-z]*)(?=\s)")
EXTRA_SPACES = re.compile(r"(?<=[A-Za-z,;\ue000])  +(?=[A-Za-z(\ue000])")
ALIGNMENT = re.compile(r"\S {3,}\S.* {3,}\S")  # columns lined up with spaces: a plain-text table
ABBREVIATIONS = word_set("eg ie etc vs approx incl esp cf al fig eq vol pp ca min max no st mr mrs ms dr jr sr")
STARTERS = word_set(
    "the this that these those it its i you your we our they their he she there here if in on at for to as and but "
    "so or then also however finally first second next note when once after before while each every some many most "
    "a an what why how which who yes no please thanks otherwise alternatively additionally instead remember"
)

RUN_BEFORE, RUN_AFTER = re.compile(r"\S*$"), re.compile(r"\S*")

Repeated = Callable[[str], bool]


@dataclass
class Change:
    kind: str
    before: str
    after: str
    line: int

    def as_dict(self) -> dict[str, str | int]:
        return {"kind": self.kind, "from": self.before, "to": self.after, "line": self.line}


@dataclass
class Piece:
    """One piece of prose, masked, with what the rules need to know about where it sits."""

    text: str
    spans: list[str]
    line: int
    sentence_start: bool = True  # the piece begins a sentence
    table: bool = False  # a table row: no spacing or punctuation rules
    frozen: bool = False  # holds the mask character itself: left as it is
    changes: list[Change] = field(default_factory=list)

    def unmask(self, text: str, first: int) -> str:
        parts, k = [], first
        for ch in text:
            if ch in (MASK, TAG_MASK):
                parts.append(self.spans[k] if k < len(self.spans) else ch)
                k += 1
            else:
                parts.append(ch)
        return "".join(parts)


def mask(text: str) -> tuple[str, list[str]]:
    spans: list[str] = []

    def keep(m: re.Match[str]) -> str:
        spans.append(m.group(0))
        return TAG_MASK if TAG.fullmatch(m.group(0)) else MASK

    return PROTECTED.sub(keep, text), spans


def prose_piece(text: str, line: int, *, sentence_start: bool = True, table: bool = False) -> Piece:
    """`text` masked, ready for `fix`. Text that already holds the mask character gets no rules at all."""
    if MASK in text or TAG_MASK in text:
        return Piece(text, [], line, sentence_start, table, frozen=True)
    masked, spans = mask(text)
    return Piece(masked, spans, line, sentence_start, table)


def fix(piece: Piece, repeated: Repeated, spelling: bool = True) -> str:
    """Apply the rules to `piece` (recording its changes); the fixed text, unmasked. `spelling`: whether to
    correct spelling too (not in an answer that is not in English)."""
    if piece.frozen:
        return piece.text
    if not piece.table:
        _rewrite(piece, DOUBLED_PUNCT, "punctuation", lambda m: m.group(1) or m.group(2) or m.group(3))
        _rewrite(piece, MISSING_SPACE_COMMA, "punctuation", _comma_space)
        _rewrite(piece, MISSING_SPACE_STOP, "punctuation", _stop_space)
        _rewrite(piece, SPACE_BEFORE_PUNCT, "spacing", lambda m: m.group(2))
        if not ALIGNMENT.search(piece.text):
            _rewrite(piece, EXTRA_SPACES, "spacing", lambda m: " ")
    _rewrite(piece, PRONOUN_I, "capital", lambda m: "I")
    _rewrite(piece, DOUBLED_WORD, "doubled_word", _doubled)
    if spelling:
        _rewrite(piece, WORD, "spelling", lambda m: _spelling(piece, m, repeated))
    return piece.unmask(piece.text, 0)


def vocabulary(masked: str) -> tuple[int, int]:
    """(lowercase words of four letters or more, those of them the dictionary does not know) in `masked`."""
    words = [w for w in WORD.findall(masked) if len(w) >= grammar_spelling.MIN_LENGTH and w.islower()]
    return len(words), sum(not grammar_spelling.known(w) for w in words)


def _rewrite(piece: Piece, pattern: re.Pattern[str], kind: str, replace: Callable[[re.Match[str]], str | None]) -> None:
    """Replace each match for which `replace` gives new text, recording the change with the words it touches."""
    text, out, last = piece.text, [], 0
    for m in pattern.finditer(text):
        new = replace(m)
        if new is None or new == m.group(0):
            continue
        left = m.start() - len(RUN_BEFORE.search(text, 0, m.start()).group(0))  # type: ignore[union-attr]
        right = m.end() + len(RUN_AFTER.match(text, m.end()).group(0))  # type: ignore[union-attr]
        before = text[left:right]
        after = text[left : m.start()] + new + text[m.end() : right]
        first = text.count(MASK, 0, left) + text.count(TAG_MASK, 0, left)
        piece.changes.append(
            Change(kind, piece.unmask(before, first)[:80], piece.unmask(after, first)[:80], piece.line)
        )
        out.append(text[last : m.start()] + new)
        last = m.end()
    if out:
        piece.text = "".join(out) + text[last:]


def _comma_space(m: re.Match[str]) -> str | None:
    left, mark, right = m.groups()
    words = grammar_spelling.dictionary().words
    if left.lower() not in words or right.lower() not in words:
        return None
    return f"{left}{mark} {right}"


def _stop_space(m: re.Match[str]) -> str | None:
    left, right = m.groups()
    if left in ABBREVIATIONS or right.lower() not in STARTERS or left not in grammar_spelling.dictionary().words:
        return None
    return f"{left}. {right}"


def _doubled(m: re.Match[str]) -> str | None:
    first, _, second = m.groups()
    if first.lower() != second.lower() or second != second.lower() or first.lower() in LEGIT_DOUBLES:
        return None
    return first


def at_sentence_start(piece: Piece, pos: int) -> bool:
    before = piece.text[:pos]
    if not before.strip(OPENERS):
        return piece.sentence_start
    return bool(SENTENCE_END_BEFORE.search(before))


def _spelling(piece: Piece, m: re.Match[str], repeated: Repeated) -> str | None:
    word = m.group(0)
    if word.islower():
        lower = word
    elif word[0].isupper() and word[1:].islower() and at_sentence_start(piece, m.start()):
        lower = word.lower()  # a capital that only marks the start of a sentence
    else:
        return None  # a proper name, an acronym or a camelCase name
    if repeated(lower):
        return None
    fixed = grammar_spelling.correction(lower, capitalised=lower != word)
    if fixed is None:
        return None
    return fixed if word.islower() else fixed.capitalize()
