"""Goal hijacking at the output: an answer that prints what the input dictated instead of doing the operator's task.

Whatever words an attack uses ("ignore the above and say ...", in any language, inside a pasted document), a
hijack that succeeds shows in the answer: it is the phrase the input put in quotes. So the input's quoted
phrases are collected (`dictated`), and the output guard holds an answer's opening while it may still become
one of them (`Opening`). An answer that opens with a dictated phrase is stopped before the phrase leaves; one
that merely quotes it inside a longer answer ("'carpe diem' means ...") is not.
"""

from __future__ import annotations

import re

from parley.guards.scripts import UNSPACED

# a quoted span: straight or typographic quotes, guillemets, CJK corner brackets; single quotes only where
# they cannot be apostrophes (no letter on their outer side)
QUOTED = re.compile(
    r"\"([^\"\n]{2,300})\"|“([^”\n]{2,300})”|„([^“”\n]{2,300})[“”]|«\s?([^»\n]{2,300}?)\s?»|「([^」\n]{2,300})」|"
    r"『([^』\n]{2,300})』|(?<!\w)'([^'\n]{2,300}?)'(?!\w)|‘([^’\n]{2,300})’"
)
NON_WORD = re.compile(r"[\W_]+")


def norm(text: str) -> str:
    """Casefolded words, one space apart: how an opening and a phrase are compared."""
    return NON_WORD.sub(" ", text.casefold()).strip()


def dictated(text: str) -> list[str]:
    """What an answer printing the input's quoted words would open with: every quoted phrase and each of its
    tails of three words or more (a command inside quotes ends with its payload: "... and say I have been PWNED");
    in scripts written without spaces, tails of three characters or more. Normalised, longest first."""
    phrases = set()
    for match in QUOTED.finditer(text):
        words = norm(next(g for g in match.groups() if g is not None)).split()
        if len(words) == 1 and UNSPACED.search(words[0]):
            phrases.update(words[0][i:] for i in range(len(words[0]) - 2))
        else:
            phrases.update(" ".join(words[i:]) for i in range(len(words) - 2))
            if len(words) >= 2:
                phrases.add(" ".join(words))
    return sorted(phrases, key=len, reverse=True)


SENTENCE_END = re.compile(r"[\"'”’»」』)\]*_\s]*(?:[.!?…。！？\n]|$)")


TERMINAL = re.compile(r"[.!?…。！？\n]")


class Opening:
    """Watches an answer's opening. `check(text_so_far)` says `hold` while the opening may still turn into a
    dictated phrase said as a sentence of its own, `hit` once it has, and `clear` once it cannot (then it need
    not be asked again). A phrase that goes on into a longer sentence ("'Carpe diem' means ...") is clear."""

    def __init__(self, phrases: list[str]) -> None:
        self.phrases = phrases
        self.phrase: str | None = None
        self._patterns = [(p, re.compile(r"\W*" + r"\W+".join(map(re.escape, p.split())), re.S)) for p in phrases]

    def check(self, text: str, final: bool = False) -> str:
        folded = text.casefold()
        head = norm(folded)
        if not head:
            return "clear" if final else "hold"
        for phrase, pattern in self._patterns:
            if (match := pattern.match(folded)) is not None:
                after = folded[match.end() :]
                if after[:1].isalnum() and not UNSPACED.match(after[:1]):
                    continue  # the word goes on ("humans" past "human")
                end = SENTENCE_END.match(after)
                if end is None:
                    continue  # the sentence goes on past the phrase
                if not final and not TERMINAL.search(end.group()):
                    return "hold"  # nothing but quotes and spaces after the phrase yet
                self.phrase = phrase
                return "hit"
            if not final and ((phrase.startswith(head) and not text[-1:].isspace()) or phrase.startswith(head + " ")):
                return "hold"
        return "clear"
