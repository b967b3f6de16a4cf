"""One CommonMark definition of fenced code, and every part that judges "inside code" agreeing with it."""

from __future__ import annotations

import pytest

from parley.guards.html import HtmlSanitizer
from parley.markdown import Fence, FenceTracker, fence_opened_by, open_fence, undecided
from parley.pipeline.postprocess.cleanup import FenceCloser
from parley.pipeline.preprocess.normalize import NormalizeReport, normalize_text
from tests.streams import random_pieces

XSS = "<img src=x onerror=alert(1)>"

# (document, the fence open at its end or None, whether the XSS line is inside code)
CASES = [
    (f"~~~\nx\n```\n{XSS}\n", Fence("~", 3), True),  # a backtick fence does not close a tilde fence
    (f"````\nx\n```\n{XSS}\n", Fence("`", 4), True),  # nor a shorter one
    (f"```\nx\n```  \n{XSS}\n", None, False),  # trailing spaces after a closing fence are allowed
    (f"```\nx\n``` no\n{XSS}\n", Fence("`", 3), True),  # text after it is not
    (f"    ```\n{XSS}\n", None, False),  # four spaces: an indented line, not a fence
    (f"```py`x\n{XSS}\n", None, False),  # a backtick in a backtick fence's info string: not a fence
    (f"   ~~~~ python\n{XSS}\n", Fence("~", 4), True),  # up to three spaces, and an info string
]


@pytest.mark.parametrize(("doc", "fence", "xss_in_code"), CASES)
def test_the_fence_definition(doc, fence, xss_in_code):
    assert open_fence(doc) == fence
    tracker = FenceTracker()
    in_code = {line: tracker.feed(line) for line in doc.split("\n")}
    assert in_code[XSS] is xss_in_code


@pytest.mark.parametrize(("doc", "fence", "xss_in_code"), CASES)
def test_the_html_sanitiser_agrees(doc, fence, xss_in_code):
    for seed in range(3):
        h = HtmlSanitizer()
        out = "".join([h.feed(p, 100) for p in random_pieces(doc, seed, longest=4)] + [h.finish("stop")])
        assert (XSS in out) is xss_in_code


@pytest.mark.parametrize(("doc", "fence", "xss_in_code"), CASES)
def test_the_fence_closer_agrees(doc, fence, xss_in_code):
    closer = FenceCloser()
    out = "".join([closer.feed(p, 100) for p in random_pieces(doc, 1)] + [closer.finish("stop")])
    assert out == doc + (fence.closer if fence else "")


@pytest.mark.parametrize(("doc", "fence", "xss_in_code"), CASES)
def test_normalisation_agrees(doc, fence, xss_in_code):
    spaced = doc.replace(XSS, "a  b")
    assert ("a  b" in normalize_text(spaced, NormalizeReport())) is xss_in_code


def test_a_partial_line_stays_undecided_while_it_may_become_a_fence():
    assert undecided("``") and undecided("   ~") and undecided("```pyth")
    assert not undecided("``x") and not undecided("    ``")
    assert fence_opened_by("~~~~") == Fence("~", 4) and fence_opened_by("``") is None
