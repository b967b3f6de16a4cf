import pytest

from parley.engines.stops import StopMatcher


def feed_all(matcher, pieces):
    out = []
    for p in pieces:
        text, hit = matcher.feed(p)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


@pytest.mark.parametrize(
    ("pieces", "stops", "expected", "hit"),
    [
        (["Hello", " wor", "ld. ", "END", " more"], ["END"], "Hello world. ", True),
        (["a", "b", "<", "/st", "op>", "c"], ["</stop>"], "ab", True),
        (["a <", "/s", "x"], ["</stop>"], "a </sx", False),  # a partial match is released
        (["one", "\n\n", "two"], ["\n\n", "zzz"], "one", True),
        (["no stops here"], [], "no stops here", False),
    ],
)
def test_stop_sequences(pieces, stops, expected, hit):
    assert feed_all(StopMatcher(stops), pieces) == (expected, hit)
