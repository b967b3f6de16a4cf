"""Writing systems the guards treat apart: those written without spaces between words."""

from __future__ import annotations

import re

# Hiragana and katakana, CJK ideographs, Hangul syllables, Thai: a "word count" means nothing there, so length
# limits count characters and phrases are matched anywhere
UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")
