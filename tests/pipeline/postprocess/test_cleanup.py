import pytest

from parley.pipeline.postprocess.cleanup import (
    FenceCloser,
    LeakedTokenStripper,
    RepetitionCutter,
    TruncationTrimmer,
    copies_needed,
)
from tests.streams import random_pieces


def run(filt, pieces, reason="stop", budget=10_000):
    """Feed pieces (one token each) and finish; returns (emitted text, stopped)."""
    out = []
    for used, piece in enumerate(pieces, start=1):
        out.append(filt.feed(piece, budget - used))
        if filt.stop:
            break
    out.append(filt.finish(reason))
    return "".join(out), filt.stop


def chunked(text, seed):
    return random_pieces(text, seed)


SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<jupyter_code>"]


@pytest.mark.parametrize(
    ("text", "expected", "stopped"),
    [
        ("Hello there.<|im_end|>\n<|im_start|>user\nmore", "Hello there.", True),
        ("Answer: 42<|endoftext|>trailing", "Answer: 42", True),
        ("code <jupyter_code>print(1)", "code print(1)", False),
        ("a < b and c [x] <|im not a marker", "a < b and c [x] <|im not a marker", False),
        ("Plain answer with no markers.", "Plain answer with no markers.", False),
    ],
)
def test_leaked_template_tokens_are_stripped_or_end_the_answer(text, expected, stopped):
    for seed in range(5):
        out, did_stop = run(LeakedTokenStripper(SPECIALS), chunked(text, seed))
        assert out == expected
        assert did_stop is stopped


def test_loop_of_a_sentence_is_cut_to_one_copy_whatever_the_chunking():
    sentence = "The cat sat on the mat. "
    text = "Intro here. " + sentence * 8
    outs = {run(RepetitionCutter(), chunked(text, seed))[0] for seed in range(8)}
    assert outs == {"Intro here. The cat sat on the mat."}


def test_short_unit_loop_needs_many_copies():
    assert copies_needed(2) > copies_needed(8) > copies_needed(40)
    out, stopped = run(RepetitionCutter(), chunked("Wow " + "ha" * 40, 1))
    assert stopped
    # Repeated tails shorter than MIN_HOLD stream out before a loop can be seen; the rest is cut.
    assert out.startswith("Wow ha")
    assert len(out) <= len("Wow ") + RepetitionCutter.MIN_HOLD + 2


@pytest.mark.parametrize(
    "text",
    [
        "Repeat twice: hello world, hello world.",  # two copies are a request, not a loop
        "First, mix. Second, bake. Third, serve.",
        "The number of users and the number of groups grew.",
        "x = [0, 0, 0, 0]\n",
        "=======\nTitle\n=======\n",
    ],
)
def test_ordinary_repetition_passes_untouched(text):
    for seed in range(4):
        out, stopped = run(RepetitionCutter(), chunked(text, seed))
        assert out == text
        assert not stopped


def test_repeated_span_is_held_then_released_when_text_moves_on():
    cutter = RepetitionCutter()
    first = cutter.feed("The quick brown fox. ", 100)
    assert first.startswith("The quick brown fox.")
    second = cutter.feed("The quick brown", 100)
    assert second.strip() == ""  # might be a loop starting: held
    rest = cutter.feed(" dog jumps.", 100) + cutter.finish("stop")
    assert first + second + rest == "The quick brown fox. The quick brown dog jumps."


def test_truncated_sentence_is_trimmed_only_when_cut_by_length():
    text = "Paris is the capital of France. It is known for the Eiffel Tower and its muse"
    pieces = text.split(" ")
    pieces = [p + " " for p in pieces[:-1]] + [pieces[-1]]
    out_len, _ = run(TruncationTrimmer(), pieces, reason="length", budget=len(pieces))
    assert out_len == "Paris is the capital of France."
    out_stop, _ = run(TruncationTrimmer(), pieces, reason="stop", budget=len(pieces))
    assert out_stop == text


def test_complete_answer_cut_by_length_is_kept():
    pieces = ["One. ", "Two. ", "Three."]
    assert run(TruncationTrimmer(), pieces, reason="length", budget=3)[0] == "One. Two. Three."


def test_truncation_inside_code_drops_the_partial_line():
    pieces = ["Here:\n", "```python\n", "x = 1\n", "y = compu"]
    out, _ = run(TruncationTrimmer(), pieces, reason="length", budget=4)
    assert out == "Here:\n```python\nx = 1\n"


def test_text_before_the_window_streams_immediately():
    trimmer = TruncationTrimmer()
    assert trimmer.feed("Early words", 500) == "Early words"
    assert trimmer.feed(" later. More", 10) == " later."
    assert trimmer.finish("length") == ""


@pytest.mark.parametrize(
    ("text", "expected_suffix", "closed"),
    [
        ("Look:\n```python\nprint(1)\n", "print(1)\n```", True),
        ("Look:\n```python\nprint(1)", "print(1)\n```", True),
        ("Look:\n```\nx\n```\nDone.", "Done.", False),
        ("No code at all.", "No code at all.", False),
    ],
)
def test_unclosed_code_fence_is_closed(text, expected_suffix, closed):
    for seed in range(3):
        closer = FenceCloser()
        out, _ = run(closer, chunked(text, seed))
        assert out.endswith(expected_suffix)
        assert closer.report()["closed_fence"] is closed
