import pytest

from parley.pipeline.preprocess.normalize import NormalizeReport, normalize_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Cafe\u0301", "Café"),  # NFD → NFC
        ("pass\u200bword", "password"),  # zero-width space
        ("a\x00b\x07c", "abc"),  # control characters
        ("line one   with    gaps", "line one with gaps"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("para\n\n\n\n\nnext", "para\n\nnext"),
        ("  padded  ", "padded"),
        ("```\ndef f():\n    return  1\n```", "```\ndef f():\n    return  1\n```"),  # code keeps spacing
        ("    indented line", "indented line"),
    ],
)
def test_normalize_text(raw, clean):
    assert normalize_text(raw, NormalizeReport()) == clean


def test_report_counts_what_changed():
    report = NormalizeReport()
    normalize_text("a\u200b\u200db\x01  c", report)
    assert report.zero_width_removed == 2
    assert report.control_removed == 1
    assert report.whitespace_collapsed == 1
