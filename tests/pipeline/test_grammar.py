"""The grammar pass (postprocess/grammar.py): what it fixes, what it never touches, and that it streams."""

from __future__ import annotations

import json
import threading

import pytest

from parley.pipeline.postprocess import grammar_spelling
from parley.pipeline.postprocess.grammar import HOLD_LIMIT, MAX_LISTED, GrammarPass
from tests.streams import random_pieces


def run(pieces: list[str]) -> tuple[str, GrammarPass]:
    filt = GrammarPass()
    out = [filt.feed(piece, 1000) for piece in pieces]
    out.append(filt.finish("stop"))
    return "".join(out), filt


def fixed(text: str) -> str:
    return run([text])[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I recieve the message every day.", "I receive the message every day."),
        ("It is definately the best option.", "It is definitely the best option."),
        ("Set the enviroment variable first.", "Set the environment variable first."),
        ("Becuase it is cached, it is fast.", "Because it is cached, it is fast."),
        ("The the cat sat on the mat.", "The cat sat on the mat."),
        ("Put it in in the box.", "Put it in the box."),
        ("Add salt , then stir.", "Add salt, then stir."),
        ("Is it ready ?", "Is it ready?"),
        ("Wait for it  to finish.", "Wait for it to finish."),
        ("Apples,pears and plums.", "Apples, pears and plums."),
        ("It works.The tests pass.", "It works. The tests pass."),
        ("Done,, finally.", "Done, finally."),
        ("That is all..", "That is all."),
        ("Yes, i think so, and i'm sure.", "Yes, I think so, and I'm sure."),
    ],
)
def test_planted_errors_are_corrected(text, expected):
    assert fixed(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Wait for it... then go.",
        "I had had enough, and I knew that that was true.",
        "Pi is about 3.14, and 1,000 is a thousand.",
        "Use a flag, e.g. the default, i.e. `--fast`.",
        "Edit config.yaml and main.py, then run it.",
        "Bora Bora is an island. Walla Walla is a city.",
        "The variable i is the loop index.",
        "Name     Age     City",  # columns lined up with spaces
        "A line that ends with a hard break  \nand goes on.",
        "The ratio is 16:9 at 10:30 a.m. :)",
        "Pothos and monstera are easy houseplants.",
    ],
)
def test_correct_text_is_left_alone(text):
    assert fixed(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "```python\nrecieve = teh_the  # the the , typo\nprint( x ,y )\n```",
        "~~~\nthe the recieve\n```\nstill code ,, here\n~~~",
        "Call `the the recieve ,x` and `` a `b` the the ``.",
        "See https://example.com/the_the/recieve?a=1,b=2 and www.exmaple.org/teh .",
        "Write to jon.the.the@exmaple.com or recieve@example.org now.",
        "Read [the docs](https://docs.example.com/recieve  ,x) and <https://a.b/recieve>.",
        "Use <span class='recieve'>x</span> here.",
        "    recieve the the   code ,\n    indented block",
    ],
)
def test_code_urls_emails_and_links_stay_byte_identical(text):
    out = fixed(text)
    for protected in ("the_the/recieve?a=1,b=2", "jon.the.the@exmaple.com", "(https://docs.example.com/recieve  ,x)",
                      "<https://a.b/recieve>", "<span class='recieve'>", "`the the recieve ,x`"):  # fmt: skip
        if protected in text:
            assert protected in out
    if text.startswith(("```", "~~~", "    ")):
        assert out == text


@pytest.mark.parametrize(
    "answer",
    [
        '{"text": "the the recieve , x", "ok": true}',
        '[{"task": "recieve the the parcel"}, 1,2]',
        '  \n{\n  "a": "teh  the the"\n}\n',
    ],
)
def test_a_json_answer_passes_through_whole(answer):
    out, filt = run(random_pieces(answer, seed=1))
    assert out == answer
    assert filt.report()["changes"] == []


def test_json_lines_inside_prose_are_untouched():
    text = 'Here it is:\n{\n  "note": "the the recieve",\n  "n": [1, 2]\n}\nThe the end.'
    assert fixed(text) == 'Here it is:\n{\n  "note": "the the recieve",\n  "n": [1, 2]\n}\nThe end.'


@pytest.mark.parametrize(
    "text",
    [
        "Run get_user_id and parseJSON, then check HTTP and NASA.",
        "The recieveMessage handler and the recieve_all flag stay.",
        "Ask Kowalsky or Grafana support; Thier team knows Jasen.",
        "Install kubectl, pytest and numpy with pip or npm.",
        "Version v1.2.3 of libfoo2 ships with python3.11.",
        "The price is $5 and the path is ~/.config/app.toml.",
    ],
)
def test_identifiers_and_proper_names_are_untouched(text):
    assert fixed(text) == text


def test_a_foreign_language_answer_gets_no_spelling_changes():
    text = "Der Hund schläft auf dem Sofa, weil er müde ist. Wir werden morgen wieder spielen und danach essen."
    assert fixed(text) == text


def test_an_unknown_word_used_twice_is_taken_as_meant():
    assert fixed("The frobnacle is set. Each frobnacle runs once.") == "The frobnacle is set. Each frobnacle runs once."


ANSWERS = [
    "Sure! I recieve teh the data , then i parse it.Then we go.\n\n```js\nconst the_the = 1 ,x;\n```\n"
    "- Item one  with spaces\n- See https://x.y/recieve and `code  here`.\n| a  | b |\n|---|---|\n",
    "# Title\n\nThe the answer is 42..\nNext line without a newline at the end",
    "Prose first. " * 60 + "\n" + "word " * 150 + "the the end",
    "x" * 900 + " the the recieve , y\n",
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_any_split_of_the_stream_gives_the_same_output(answer):
    whole = fixed(answer)
    assert run(list(answer))[0] == whole
    for seed in range(15):
        assert run(random_pieces(answer, seed, longest=12))[0] == whole


def test_a_long_line_without_newline_is_held_back_boundedly():
    line = "This clause goes on and on with no full stop, " * 60 + "and the the end"
    filt, held, out = GrammarPass(), 0, []
    for fed, ch in enumerate(line, start=1):
        out.append(filt.feed(ch, 1000))
        held = max(held, fed - len("".join(out)))
    out.append(filt.finish("stop"))
    assert held <= HOLD_LIMIT + 1
    assert "".join(out) == fixed(line)
    assert "".join(out).endswith("and the end")


def test_most_of_2000_characters_of_lines_go_out_before_finish():
    text = "".join(f"Line {i} has a few plain words in it.\n" for i in range(60))[:2000]
    filt = GrammarPass()
    before_finish = "".join(filt.feed(piece, 1000) for piece in random_pieces(text, seed=3))
    assert len(before_finish) >= len(text) - HOLD_LIMIT
    assert before_finish + filt.finish("stop") == text


def test_the_report_lists_each_change_with_its_line():
    _, filt = run(["Fine line.\nThe the dog , i think, is definately here.\n"])
    report = filt.report()
    assert [(c["kind"], c["from"], c["to"], c["line"]) for c in report["changes"]] == [
        ("spacing", "dog ,", "dog,", 2),
        ("capital", "i", "I", 2),
        ("doubled_word", "The the", "The", 2),
        ("spelling", "definately", "definitely", 2),
    ]
    assert report["changes_total"] == 4
    json.dumps(report)


def test_the_change_list_is_capped_but_all_are_counted():
    _, filt = run(["The the word. " * (MAX_LISTED + 10)])
    report = filt.report()
    assert len(report["changes"]) == MAX_LISTED
    assert report["changes_total"] == MAX_LISTED + 10


def test_readability_is_scored_on_prose_only():
    _, filt = run(["The cat sat on the mat. It was warm.\n\n```python\nx = compute_everything_quickly()\n```\n"])
    scores = filt.report()["readability"]
    assert scores["words"] == 9
    assert scores["sentences"] == 2
    assert scores["flesch_reading_ease"] > 90
    assert scores["grade"] < 3
    simple, hard = (
        fixed_scores("We sat. We ate."),
        fixed_scores("Institutional considerations necessitate comprehensive organizational restructuring."),
    )
    assert simple["flesch_reading_ease"] > hard["flesch_reading_ease"]
    assert simple["grade"] < hard["grade"]


def fixed_scores(text: str) -> dict:
    return run([text])[1].report()["readability"]


def test_an_empty_answer_reports_no_readability():
    out, filt = run([""])
    assert out == ""
    assert filt.report()["readability"]["words"] == 0


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("recieve", "receive"),  # two letters swapped
        ("enviroment", "environment"),  # a letter dropped
        ("untill", None),  # un + till: a word English could make, left alone
        ("seperate", "separate"),  # one vowel for another
        ("wich", "which"),  # "with" would need a consonant changed: not a slip
        ("kubernetes", None),  # technical words
        ("repo", None),
        ("teh", None),  # too short to be sure
        ("tokenizers", None),  # a form of a technical word
        ("successfull", "successful"),  # a doubled last letter
        ("wether", None),  # whether or weather: no clear winner
    ],
)
def test_only_confident_spelling_corrections(word, expected):
    assert grammar_spelling.correction(word) == expected


def test_a_name_one_vowel_from_a_word_is_not_corrected_when_capitalised():
    assert grammar_spelling.correction("pothos") == "pathos"
    assert grammar_spelling.correction("pothos", capitalised=True) is None


def test_the_dictionary_loads_once_across_threads():
    found = []
    threads = [threading.Thread(target=lambda: found.append(grammar_spelling.dictionary())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(d is found[0] for d in found)
    assert grammar_spelling.load_seconds() is not None
    assert len(found[0].words) > 80_000
