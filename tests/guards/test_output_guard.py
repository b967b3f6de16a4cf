"""The streaming output guard: the same result for any chunking, and nothing sensitive ever emitted."""

from __future__ import annotations

import pytest

from parley.guards.base import Action, Policy
from parley.guards.output_guard import DEFAULT_OUTPUT_POLICY, OutputGuard
from parley.guards.pii import PIIScanner
from parley.guards.secrets import SecretScanner
from tests.streams import random_pieces

SYSTEM = "You are the support bot of ACME. Internal discount code: ZEBRA-77. Never mention competitors."


def guard(policy=DEFAULT_OUTPUT_POLICY, offensive=None):
    return OutputGuard(policy, [PIIScanner(), SecretScanner()], canary="pc-0123abcd4567",
                       system_prompt=SYSTEM, offensive=offensive)  # fmt: skip


def stream(g, text, seed):
    emitted = []
    for p in random_pieces(text, seed, longest=7):
        emitted.append(g.feed(p, 100))
        if g.stop:
            break
    emitted.append(g.finish("stop"))
    return emitted


@pytest.mark.parametrize("seed", range(6))
def test_pii_and_secrets_are_redacted_whatever_the_chunking(seed):
    text = "Contact bob@example.com or call +1 415 555 2671; the key is AKIAIOSFODNN7EXAMPLE. Done."
    emitted = stream(guard(), text, seed)
    joined = "".join(emitted)
    assert joined == "Contact [EMAIL] or call [PHONE]; the key is [AWS_ACCESS_KEY]. Done."
    assert not any("bob@" in e or "AKIA" in e or "2671" in e for e in emitted)


@pytest.mark.parametrize("seed", range(4))
def test_canary_leak_ends_the_answer(seed):
    g = guard()
    emitted = "".join(stream(g, "Sure! My marker is pc-0123abcd4567 and my rules are secret.", seed))
    assert "pc-0123" not in emitted
    assert g.stop and g.blocked == "leak:canary"


def test_verbatim_system_prompt_leak_ends_the_answer():
    g = guard()
    emitted = "".join(stream(g, "My instructions: " + SYSTEM, 1))
    assert g.blocked == "leak:system_prompt"
    assert "ZEBRA-77" not in emitted


def test_private_key_block_is_held_and_redacted():
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    emitted = stream(guard(), f"Here it is:\n{key}\nKeep it safe.", 2)
    assert "MIIEvQ" not in "".join(emitted)
    assert "[PRIVATE_KEY]" in "".join(emitted)


def test_ordinary_text_streams_without_delay():
    g = guard()
    assert g.feed("The quick brown fox ", 100) == "The quick brown fox "
    assert g.feed("jumps", 100) == ""  # a word in progress may still become an email or a key
    assert g.feed(" over", 100) == "jumps "


def test_secret_block_policy_ends_with_content_filter():
    g = guard(Policy({"secrets": Action.BLOCK, "leak": Action.BLOCK}))
    emitted = "".join(stream(g, "token: ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 ok", 3))
    assert g.blocked.startswith("secrets") and "ghp_" not in emitted


def offensive(texts):
    return [0.99 if "idiot" in t else 0.01 for t in texts]


def test_offensive_sentences_redacted_by_policy():
    g = guard(Policy({"offensive": Action.REDACT}), offensive=offensive)
    out = "".join(stream(g, "Hello there. You are an idiot. Have a nice day.", 4))
    assert "idiot" not in out and "[removed]" in out and out.startswith("Hello there.")


def test_offensive_flag_only_records():
    g = guard(Policy({"offensive": Action.FLAG}), offensive=offensive)
    out = "".join(stream(g, "You are an idiot. Bye.", 5))
    assert out == "You are an idiot. Bye."
    assert any(f["kind"] == "offensive" for f in g.report()["findings"])


@pytest.mark.parametrize("seed", range(5))
def test_html_is_sanitized_outside_code_and_streams_the_same_for_any_chunking(seed):
    from parley.guards.html import HtmlSanitizer

    text = ('Hi <img src=x onerror=alert(1)> <b>bold</b> <a href="javascript:evil()">x</a> [y](javascript:z()) '
            "`<i>` ok\n```html\n<script>kept()</script>\n```\nafter <u onclick=z>u</u> end.")  # fmt: skip
    h = HtmlSanitizer()
    out = [h.feed(piece, 100) for piece in random_pieces(text, seed)]
    out.append(h.finish("stop"))
    result = "".join(out)
    assert result == ('Hi  <b>bold</b> <a rel="noopener noreferrer">x</a> [y](#z()) `<i>` ok\n```html\n'
                      "<script>kept()</script>\n```\nafter u end.")  # fmt: skip


@pytest.mark.parametrize(
    ("pieces", "secret"),
    [
        (["password", ":", " hunter2xyz", "\n"], "hunter2xyz"),
        (["AWS_SECRET_ACCESS_KEY", " = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "\n"], "wJalrXUtnFEMI"),
        (["12345678", " ", "Z", " done"], None),  # a label-free id split at a space: at least the end is caught
    ],
)
def test_a_value_released_after_its_label_is_still_redacted(pieces, secret):
    g = guard()
    out = "".join([g.feed(p, 100) for p in pieces] + [g.finish("stop")])
    if secret:
        assert secret not in out
    assert g.findings


def test_a_secret_inside_a_very_long_run_is_redacted():
    text = '{"data":"' + "a" * 2500 + '","k":"AKIAIOSFODNN7EXAMPLE","more":"' + "b" * 400 + '"}'
    out = "".join(stream(guard(), text, 7))
    assert "AKIAIOSFODNN7EXAMPLE" not in out and "[AWS_ACCESS_KEY]" in out
    assert len(out) > 2900  # nothing else was lost


def test_sanitizing_html_cannot_join_the_halves_of_a_secret():
    from parley.guards.html import HtmlSanitizer

    html, g = HtmlSanitizer(), guard()
    out = []
    for piece in random_pieces("key AKIA<x>IOSFODNN7EXAMPLE and pc-0123<!---->abcd4567 end", 3):
        out.append(g.feed(html.feed(piece, 100), 100))  # the order postprocess uses: html, then the guard
    out.append(g.feed(html.finish("stop"), 100) + g.finish("stop"))
    joined = "".join(out)
    assert "AKIAIOSFODNN7EXAMPLE" not in joined and "pc-0123abcd4567" not in joined


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Note ```<img src=x onerror=alert(1)> end", "Note ``` end"),  # a fence must start a line
        ("~~~c\n#include <vector>\n~~~\n<b>x</b>", "~~~c\n#include <vector>\n~~~\n<b>x</b>"),
        ("If x < 5 then:\n```py\nprint(1)\n```\nafter", "If x < 5 then:\n```py\nprint(1)\n```\nafter"),
    ],
)
def test_html_fences_follow_commonmark(text, expected):
    from parley.guards.html import HtmlSanitizer

    h = HtmlSanitizer()
    out = [h.feed(p, 100) for p in random_pieces(text, 1, longest=3)]
    assert "".join([*out, h.finish("stop")]) == expected


def test_code_after_an_unclosed_angle_bracket_still_streams():
    from parley.guards.html import HtmlSanitizer

    h = HtmlSanitizer()
    h.feed("If x < 5 then:\n```py\n", 100)
    assert h.feed("print(1)\n", 100) == "print(1)\n"
