"""The formatters of the profiles' output formats, fed as a stream in random pieces."""

from __future__ import annotations

import random

import pytest

from parley.pipeline.postprocess.formats import ChatFormatter, DocsFormatter, PlainFormatter, title_from


def run(make, text: str, seed: int | None = None) -> tuple[str, object]:
    f = make()
    if seed is None:
        pieces = [text]
    else:
        rng, pieces, i = random.Random(seed), [], 0
        while i < len(text):
            n = rng.randint(1, 7)
            pieces.append(text[i : i + n])
            i += n
    out = "".join(f.feed(p, 100) for p in pieces if not f.stop)
    return out + f.finish("stop"), f


ANSWER = (
    "Parley is a chat server.\n\nTo install it:\n* clone the repository\n+ run `make run`\n\n"
    "```python\n# not a heading\n* not a bullet\n```\n\n# Another title\nMore text."
)


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_docs_answer_gets_a_title_headings_and_normalised_bullets(seed):
    out, f = run(lambda: DocsFormatter("how do I install Parley?"), ANSWER, seed)
    lines = out.splitlines()
    assert lines[0] == "# How do I install Parley"
    assert "## Summary" in lines and "## Details" in lines and "## Another title" in lines
    assert lines.index("## Summary") < lines.index("Parley is a chat server.") < lines.index("## Details")
    assert "- clone the repository" in lines and "- run `make run`" in lines
    assert "```python\n# not a heading\n* not a bullet\n```" in out  # code untouched
    assert [ln for ln in lines if ln.startswith("# ")] == ["# How do I install Parley", "# not a heading"]  # 2nd: code
    assert f.report()["changed"] >= 4


def test_docs_answer_with_its_own_structure_is_kept():
    text = "# Install\n\n## Steps\n\n1) Clone.\n2) Run.\n"
    out, _ = run(lambda: DocsFormatter("q"), text)
    assert out == "# Install\n\n## Steps\n\n1. Clone.\n2. Run.\n"


def test_title_from_a_long_question_is_cut_at_a_word():
    title = title_from("explain " + "very " * 40 + "long things?")
    assert len(title) <= 81 and title.startswith("Explain very") and title.endswith("…")


@pytest.mark.parametrize("seed", [None, 4, 5])
def test_chat_answer_ends_after_its_paragraphs_and_stops_generation(seed):
    text = "One.\n\n- a\n- b\n\n- c\n\nTwo.\n\n```\ncode\n\nmore\n```\n\nThree.\n\nFour is cut."
    out, f = run(lambda: ChatFormatter(4), text, seed)
    assert f.stop and out.rstrip().endswith("more\n```")
    assert "Three" not in out and f.report() == {"max_paragraphs": 4, "paragraphs": 4, "cut": True}


def test_short_chat_answer_is_untouched():
    text = "Hello!\n\nHow can I help?"
    out, f = run(lambda: ChatFormatter(4), text, 9)
    assert out == text and not f.stop


@pytest.mark.parametrize("seed", [None, 6, 7])
def test_plain_answer_has_no_markdown_left(seed):
    text = ("## Setup\n\n**Bold** and *it* and `snake_case_name` with a [link](https://x.org) and "
            "![logo](a.png).\n> quoted\n\n---\n\n```bash\nmake run\n```\n* item")  # fmt: skip
    out, _ = run(PlainFormatter, text, seed)
    assert out == ("Setup\n\nBold and it and snake_case_name with a link (https://x.org) and logo.\nquoted\n\n\n\n"
                   "make run\n- item")  # fmt: skip
