"""Step `normalize`: Unicode NFC, control and zero-width characters out, tidy whitespace.

Code blocks keep their inner spacing (indentation and alignment carry meaning there).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from parley.guards.invisible import reveal
from parley.markdown import FenceTracker
from parley.pipeline.context import TurnContext
from parley.pipeline.stage import BaseStep
from parley.pipeline.turn import Turn

# what `reveal` leaves that input drops too: the joiner (kept in answers, for emoji) and the soft hyphen
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200d\u00ad"), None)
# C0/C1 controls except tab and newline; carriage returns are folded into newlines first.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
INNER_SPACES = re.compile(r"(?<=\S)[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}")
BLANK_RUN = re.compile(r"\n{3,}")


@dataclass
class NormalizeReport:
    nfc_changed: int = 0
    control_removed: int = 0
    zero_width_removed: int = 0
    hidden_revealed: int = 0  # tag characters (ASCII smuggling) turned into the text they spell
    whitespace_collapsed: int = 0
    changed_messages: list[int] = field(default_factory=list)


def normalize_text(text: str, report: NormalizeReport) -> str:
    nfc = unicodedata.normalize("NFC", text)
    report.nfc_changed += nfc != text
    text = nfc.replace("\r\n", "\n").replace("\r", "\n")
    text, revealed, removed = reveal(text)
    report.hidden_revealed += revealed
    without_zw = text.translate(ZERO_WIDTH)
    report.zero_width_removed += removed + len(text) - len(without_zw)
    text, n = CONTROL.subn("", without_zw)
    report.control_removed += n
    lines, fences = [], FenceTracker()
    for line in text.split("\n"):
        in_code = fences.feed(line)
        stripped = line.rstrip()
        if not in_code:
            stripped, n = INNER_SPACES.subn(" ", stripped)
            report.whitespace_collapsed += n
        lines.append(stripped)
    return BLANK_RUN.sub("\n\n", "\n".join(lines)).strip()


class Normalize(BaseStep):
    """Chat messages and text prompts (a prompt of token ids is taken as given)."""

    name = "normalize"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return turn.kind == "chat" or isinstance(turn.raw_prompt, str)

    def run(self, turn: Turn, ctx: TurnContext) -> None:
        report = NormalizeReport()
        if turn.kind == "chat":
            for i, msg in enumerate(turn.messages):
                clean = normalize_text(msg.content, report)
                if clean != msg.content:
                    report.changed_messages.append(i)
                msg.content = clean
        else:
            turn.raw_prompt = normalize_text(str(turn.raw_prompt), report)
        turn.note(self.name, **{k: v for k, v in report.__dict__.items() if v})
