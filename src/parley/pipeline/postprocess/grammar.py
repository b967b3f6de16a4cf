"""Grammar and clarity pass: a post-processing filter that fixes high-confidence slips in an answer's prose and
lists every change in the trace, with a readability score.

It fixes misspelt common words (`grammar_spelling`), doubled words, stray spaces and doubled punctuation, a
lowercase pronoun "i" (`grammar_rules`). It never touches code: fenced blocks, indented blocks, inline code, URLs,
e-mail addresses, link targets, HTML tags, identifiers, proper names, JSON lines, table separators; an answer
that is JSON (it starts with `{`, or `[` not followed by a letter) passes through whole.

Streaming: text goes out a sentence at a time. A line is classified from its first characters; code and other
untouchable lines go out as they arrive. Prose is held until the end of its sentence or line, at most
`HOLD_LIMIT` characters: a longer run is cut at its last space before that, and a run with no space at all is
let through untouched. Every cut depends on the text alone, so any split of the same answer gives the same output.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import parley.pipeline.postprocess.grammar_spelling as grammar_spelling
from parley.markdown import FenceTracker, undecided
from parley.pipeline.postprocess.grammar_rules import MASK, TAG_MASK, Change, fix, prose_piece, vocabulary

HOLD_LIMIT = 400  # characters of one sentence held back, at most
MAX_LISTED = 50  # changes listed in the trace (all are counted)
FOREIGN_UNKNOWN, FOREIGN_SHARE = 4, 0.3  # this many unknown words, this share of all: not English, no spelling
LINE_KEPT = 8192  # characters of a line kept for fence and bracket tracking
SENTENCE_CUT = re.compile(r"[.!?][\"')\]*_”’]*[ \t]+(?=[A-Z])")
SPACE_CUT = re.compile(r"[ \t](?=[A-Za-z0-9])")
FENCE_START = re.compile(r" {0,3}(?:```|~~~)")
LIST_MARKER = re.compile(r"(?:[-*+]|\d{1,3}[.)])(?:[ \t]|$)")
JSON_KEY = re.compile(r"\"[^\"\n]*\"\s*:")
JSON_KEY_SO_FAR = re.compile(r"\"[^\"\n]{0,100}(?:\"\s*)?")
WORDS = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
SENTENCE_ENDS = re.compile(r"(?<=[\w\ue000)\]\"'*_])[.!?]+(?=[\s\"')\]*_]|$)")


def _starts_json(head: str) -> bool | None:
    """Whether text beginning with `head` (no leading space) is JSON; None while one more character is needed."""
    if head[0] == "{":
        return True
    if head[0] != "[":
        return False
    if len(head) < 2:
        return None
    return not (head[1].isalpha() or head[1] in "!^")


def _open_backticks(text: str) -> bool:
    """Whether `text` ends inside an inline code span (a backtick run not yet closed by one as long)."""
    opened = 0
    for run in re.finditer(r"`+", text):
        n = len(run.group(0))
        opened = n if not opened else (0 if n == opened else opened)
    return bool(opened)


@lru_cache(maxsize=65536)
def _syllables(word: str) -> int:
    word = word.lower()
    groups = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and groups > 1:
        groups -= 1
    return max(1, groups)


@dataclass
class Readability:
    words: int = 0
    sentences: int = 0
    syllables: int = 0
    open_words: int = 0  # words since the last sentence end

    def add(self, prose: str) -> None:
        """Count a piece of prose (masked: code and URLs are not words)."""
        last = 0
        for end in SENTENCE_ENDS.finditer(prose):
            if WORDS.search(prose, last, end.start()) or self.open_words:
                self.sentences += 1
                self.open_words = 0
            last = end.end()
        for word in WORDS.findall(prose):
            self.words += 1
            self.syllables += _syllables(word)
        self.open_words += len(WORDS.findall(prose, last))

    def end_line(self) -> None:
        if self.open_words:  # a heading or a list item without a full stop is a sentence too
            self.sentences += 1
            self.open_words = 0

    def report(self) -> dict[str, float | int | None]:
        if not self.words:
            return {"flesch_reading_ease": None, "grade": None, "words": 0, "sentences": 0}
        per_sentence = self.words / max(1, self.sentences)
        per_word = self.syllables / self.words
        return {
            "flesch_reading_ease": round(206.835 - 1.015 * per_sentence - 84.6 * per_word, 1),
            "grade": round(0.39 * per_sentence + 11.8 * per_word - 15.59, 1),
            "words": self.words,
            "sentences": self.sentences,
        }


class GrammarPass:
    """The `grammar` post-processing step (see the module docstring)."""

    name = "grammar"

    def __init__(self) -> None:
        self.stop = False
        self._pending = ""  # received, not yet emitted: always the tail of the current line
        self._json_answer: bool | None = None
        self._kind: str | None = None  # the current line: "raw", "prose" or "table"; None while undecided
        self._sentence_start = True
        self._line_no = 1
        self._line: list[str] = []  # the current line as received (its first LINE_KEPT characters)
        self._line_len = 0
        self._raw_from = 0  # where in the line the untouched part began
        self._fences = FenceTracker()
        self._json_depth = 0
        self._seen: Counter[str] = Counter()  # words so far: an unknown word seen twice is meant
        self._corrected: set[str] = set()  # words corrected once are corrected again, however often seen
        self._words = self._unknown = 0  # lowercase words so far, and those the dictionary does not know
        self._changes: list[Change] = []
        self._readability = Readability()

    def feed(self, text: str, tokens_left: int) -> str:
        self._pending += text
        return self._drain(final=False)

    def finish(self, reason: str) -> str:
        out = self._drain(final=True)
        if self._line_len or self._kind is not None:
            self._end_line()
        return out

    def report(self) -> dict[str, Any]:
        return {
            "changes": [c.as_dict() for c in self._changes[:MAX_LISTED]],
            "changes_total": len(self._changes),
            "readability": self._readability.report(),
            "dictionary_load_s": grammar_spelling.load_seconds(),
        }

    def _drain(self, final: bool) -> str:
        out: list[str] = []
        while self._pending:
            if self._json_answer is None:
                head = self._pending.lstrip()
                decided = _starts_json(head) if head else None
                if decided is None and not final:
                    break
                self._json_answer = bool(decided)
            if self._json_answer:
                out.append(self._pending)
                self._pending = ""
                break
            if self._kind is None:
                nl = self._pending.find("\n")
                self._kind = self._classify(self._pending if nl < 0 else self._pending[:nl], nl >= 0 or final)
                if self._kind is None:
                    break
            piece = self._raw() if self._kind == "raw" else self._prose(final)
            if piece is None:
                break
            out.append(piece)
        return "".join(out)

    def _classify(self, prefix: str, complete: bool) -> str | None:
        """What the current line is, from its start; None while more of it is needed to tell."""
        if self._fences.open is not None or self._json_depth > 0 or MASK in prefix or TAG_MASK in prefix:
            return "raw"
        if FENCE_START.match(prefix):
            return "raw"
        if not complete and undecided(prefix):
            return None
        body = prefix.lstrip(" \t")
        indent = prefix[: len(prefix) - len(body)]
        if not body:
            return "raw" if complete else None
        if "\t" in indent or len(indent) >= 4:
            if LIST_MARKER.match(body):
                return "prose"
            return None if not complete and re.fullmatch(r"\d{1,3}[.)]?", body) else "raw"
        if body[0] in "{}]" or body.startswith("$$"):
            return "raw"
        if body[0] in "[$" and len(body) < 2:
            return None if not complete else "prose"
        if body[0] == "[" and not (body[1].isalpha() or body[1] in "!^"):
            return "raw"
        if body[0] == '"':
            if JSON_KEY.match(body):
                return "raw"
            if not complete and JSON_KEY_SO_FAR.fullmatch(body):
                return None
        return "table" if body[0] == "|" else "prose"

    def _raw(self) -> str:
        nl = self._pending.find("\n")
        upto = len(self._pending) if nl < 0 else nl + 1
        out, self._pending = self._pending[:upto], self._pending[upto:]
        self._keep(out.rstrip("\n") if nl >= 0 else out)
        if nl >= 0:
            self._end_line()
        return out

    def _prose(self, final: bool) -> str | None:
        text = self._pending
        nl = text.find("\n")
        line = text if nl < 0 else text[:nl]
        cut = self._sentence_cut(line)
        if cut is not None:
            return self._emit(line[:cut], cut, line_end=False, next_start=True)
        if 0 <= nl <= HOLD_LIMIT or (nl < 0 and final):
            return self._emit(line, len(line) + (nl >= 0), line_end=True, next_start=True)
        if len(text) <= HOLD_LIMIT:
            return None
        space = [m.end() for m in SPACE_CUT.finditer(text, 0, HOLD_LIMIT + 1) if not _open_backticks(text[: m.end()])]
        if not space:  # one unbroken run of characters: no prose to fix, let the line through as it is
            self._kind, self._raw_from = "raw", self._line_len
            return ""
        return self._emit(text[: space[-1]], space[-1], line_end=False, next_start=False)

    def _sentence_cut(self, line: str) -> int | None:
        for m in SENTENCE_CUT.finditer(line, 0, HOLD_LIMIT + 1):
            if m.end() > HOLD_LIMIT:
                break
            if not _open_backticks(line[: m.end()]):
                return m.end()
        return None

    def _emit(self, piece: str, consumed: int, line_end: bool, next_start: bool) -> str:
        """Fix one piece of prose and emit it, dropping `consumed` characters (the piece, and its newline)."""
        newline = "\n" if consumed > len(piece) else ""
        self._pending = self._pending[consumed:]
        self._keep(piece)
        prose = prose_piece(piece, self._line_no, sentence_start=self._sentence_start, table=self._kind == "table")
        self._seen.update(w.lower() for w in WORDS.findall(prose.text))
        words, unknown = vocabulary(prose.text)
        self._words, self._unknown = self._words + words, self._unknown + unknown
        english = self._unknown < FOREIGN_UNKNOWN or self._unknown < FOREIGN_SHARE * self._words
        fixed = fix(prose, lambda word: self._seen[word] >= 2 and word not in self._corrected, spelling=english)
        self._changes.extend(prose.changes)
        self._corrected.update(c.before.lower() for c in prose.changes if c.kind == "spelling")
        if self._kind == "prose":
            self._readability.add(prose.text)
        self._sentence_start = next_start
        if line_end and newline:
            self._end_line()
        return fixed + newline

    def _keep(self, text: str) -> None:
        if self._line_len < LINE_KEPT:
            self._line.append(text[: LINE_KEPT - self._line_len])
        self._line_len += len(text)

    def _end_line(self) -> None:
        line = "".join(self._line)
        code = self._fences.feed(line)
        if self._kind == "raw":
            raw = line[self._raw_from :]
            self._seen.update(w.lower() for w in WORDS.findall(raw))
            if not code and (self._json_depth or raw.lstrip()[:1] in ("{", "[")):
                self._json_depth = max(0, self._json_depth + _bracket_balance(raw))
        else:
            self._readability.end_line()
        self._line, self._line_len, self._raw_from = [], 0, 0
        self._kind, self._sentence_start = None, True
        self._line_no += 1


def _bracket_balance(line: str) -> int:
    """Opening minus closing brackets outside JSON strings."""
    depth = 0
    for token in re.findall(r"\"(?:[^\"\\]|\\.)*\"|[\[\]{}]", line):
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
    return depth
