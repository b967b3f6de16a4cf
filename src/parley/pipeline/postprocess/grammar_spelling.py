"""High-confidence spelling corrections from symspellpy's bundled English frequency dictionary.

A word is corrected only when all of these hold (the rule `correction` applies):

- it is lowercase ASCII letters (the caller has already left out code, identifiers and proper names), at least
  `MIN_LENGTH` letters long, not in the dictionary, not in `TECH_WORDS`, not a plural of a known word and not
  a derived form of a technical word;
- among the dictionary words one edit away (Damerau: one letter added, dropped, changed or two neighbours
  swapped) it keeps only the slips people and models actually make inside a word: two neighbouring letters
  swapped, a letter dropped, a doubled letter or a stray vowel, one vowel for another. Edits of the first or
  the last letter are left out: that is where names, abbreviations and technical terms sit one letter from a
  common word (repo/rep, conda/condo, mixin/mixing). Targets rarer than `MIN_TARGET_COUNT` are left out, and
  so is the vowel slip in a capitalised word (at a sentence start names are common: Pothos is not pathos);
- one candidate is left, or the most frequent one is at least `CLEAR_WINNER` times as frequent as the next.

The dictionary (82,765 words, about 1.3 s to build its index) is loaded once per process, on first use,
under a lock; `preload` lets a server pay that cost at start-up instead of in the first answer.
"""

from __future__ import annotations

import threading
import time
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symspellpy import SymSpell

DICTIONARY_FILE = "frequency_dictionary_en_82_765.txt"
MIN_LENGTH = 4
MIN_TARGET_COUNT = 100_000
CLEAR_WINNER = 10.0
VOWELS = frozenset("aeiou")
COMMON = 1_000_000  # a word this frequent in the corpus is a stem new words are made from
PREFIXES = ("re", "un", "pre", "non", "sub", "over", "under", "mis", "co", "de", "dis", "multi", "inter", "super",
            "anti", "auto", "micro", "semi", "self")  # fmt: skip
SUFFIXES = ("ness", "less", "able", "ful", "ish", "like", "wise", "ize", "ise", "ized", "ised", "ization")


def word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words of the trade that the general dictionary lacks (or that sit one edit from a common word).
TECH_WORDS = word_set("""
    ascii const consts goroutine goroutines malloc printf println runtime runtimes sizeof stdlib typedef utf
    accessor accessors ajax allowlist ansible apis appsettings argparse args async asyncio auth authn authz
    autocomplete autoscaler autoscaling avro axios backend backends backoff backport backprop bazel bcrypt bitwise
    blockchain blocklist bool boolean booleans bools boto botocore bytecode callback callbacks changelog chatbot
    chatbots checkbox checksum chmod chown ciphertext classpath cli clis cmake codebase codebases codegen
    codepoint composable conda config configs configurable containerd containerize containerized coroutine
    coroutines cors cpus crontab csrf csv cuda cython dataclass dataclasses dataframe dataframes dataset datasets
    datetime dbt debounce debouncing dedup dedupe deduplicate deduplication deno deps deserialize deserialized
    devcontainer devops dict dicts distro distros dockerfile dockerfiles dockerize dockerized dotenv dotfiles
    dropdown dropdowns elasticsearch embeddings endpoint endpoints enum enums env envs eslint etcd ethereum
    fastapi fediverse figma filesystem filesystems finetune finetuned finetuning fixme flexbox frontend frontends
    fstab fullstack getter getters github gitignore gitlab golang gpus grafana graphql grpc gunicorn hashable
    hashmap hashmaps hashtable healthcheck homebrew hostname hostnames hotfix html hyperparameter hyperparameters
    iframe iframes impl init initializer inlined inlining integrations iterable iterables iterator iterators
    javadoc jinja json jsonl jupyter kafka keras keybinding keybindings keypair keystore kibana kotlin kubeconfig
    kubectl kubernetes kwargs lambdas laravel linter linters linting linux llama llms localhost lockfile lockfiles
    lookups macos mariadb markdown matplotlib memoization memoize memoized metadata microservice microservices
    middleware middlewares minified minify mixin mixins mockup mockups modals monorepo monorepos multiline
    multimodal mutex mutexes mypy mysql namespace namespaces navbar nginx nodejs noop npm nullable numpy nvidia
    oauth ollama onnx openai openapi overfit overfitting param params parsers pipenv plaintext podman postgres
    postgresql prepend prepended pretrained pretraining prettier protobuf proxied pydantic pylint pypi pytest
    pytorch qlora quantization quantize quantized readme readonly realtime rebase rebased rebasing recurse redis
    redux refactor refactored refactoring regex regexes relu repl repo repos rerender rerenders roadmap rollout
    rollouts rustc rustup scipy semver serializable serializer serializers serverless setter setters sidebar
    sklearn softmax sqlalchemy sqlite src stderr stdin stdio stdout subclass subclassed subclasses subcommand
    subcommands subdomain subdomains submodule submodules subnet subnets subprocess substring substrings sudo
    svelte symlink symlinks systemctl systemd tensorflow terraform tmux todo todos tokenization tokenize tokenized
    tokenizer tokenizers toml tooltip tooltips truststore tsconfig typescript ubuntu uncomment unmount unstaged
    untracked upsert upserts uptime uvicorn validator validators vectorize vectorized venv virtualenv vite vscode
    vue walkthrough webhook webhooks webpack websocket websockets whitelist wireframe wireframes workflow
    workflows wsl xml yaml yarn youtube zsh
""")

_lock = threading.Lock()
_sym: SymSpell | None = None
_load_seconds: float | None = None


def dictionary() -> SymSpell:
    """The shared SymSpell index, built on first call (thread-safe; later calls return it at once)."""
    global _sym, _load_seconds
    if _sym is None:
        with _lock:
            if _sym is None:
                from symspellpy import SymSpell

                started = time.perf_counter()
                sym = SymSpell(max_dictionary_edit_distance=1, prefix_length=5)
                path = resources.files("symspellpy") / DICTIONARY_FILE
                with resources.as_file(path) as file:
                    if not sym.load_dictionary(str(file), term_index=0, count_index=1, encoding="utf-8"):
                        raise FileNotFoundError(f"symspellpy's dictionary {DICTIONARY_FILE} is missing")
                _load_seconds = time.perf_counter() - started
                _sym = sym
    return _sym


def preload() -> float:
    """Load the dictionary now; the seconds the load took (in whichever thread did it)."""
    dictionary()
    assert _load_seconds is not None
    return _load_seconds


def load_seconds() -> float | None:
    return _load_seconds


def known(word: str) -> bool:
    """Whether `word` (lowercase) is a word to leave alone, whatever is near it."""
    words = dictionary().words
    if word in words or word in TECH_WORDS:
        return True
    if word.endswith("s") and not word.endswith("ss") and (word[:-1] in words or word[:-1] in TECH_WORDS):
        return True
    return _derived_from_tech(word) or _derived(word, words)


def _derived(word: str, words: dict[str, int]) -> bool:
    """A common word with a prefix or suffix English makes new words with ("repot", "cacheable")."""
    for prefix in PREFIXES:
        if word.startswith(prefix) and words.get(word[len(prefix) :], 0) >= COMMON and len(word) - len(prefix) >= 3:
            return True
    for suffix in SUFFIXES:
        if word.endswith(suffix) and words.get(word[: -len(suffix)], 0) >= COMMON and len(word) - len(suffix) >= 4:
            return True
    return False


def _derived_from_tech(word: str) -> bool:
    for suffix in ("s", "es", "ed", "d", "ing", "er", "ers", "ly"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and (stem in TECH_WORDS or stem + "e" in TECH_WORDS):
            return True
    return False


def slip(typo: str, target: str) -> str | None:
    """Which of the slips people make turns `target` into `typo` ("swap", "extra", "drop", "vowel"), if any."""
    if len(typo) == len(target):
        diff = [i for i, (a, b) in enumerate(zip(typo, target, strict=True)) if a != b]
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            swapped = typo[diff[0]] == target[diff[1]] and typo[diff[1]] == target[diff[0]]
            return "swap" if swapped else None
        inner = len(diff) == 1 and 0 < diff[0] < len(typo) - 1
        return "vowel" if inner and typo[diff[0]] in VOWELS and target[diff[0]] in VOWELS else None
    if len(typo) == len(target) + 1:  # an extra letter: a doubled one anywhere, a stray vowel inside
        for i in range(1, len(typo)):
            if typo[:i] + typo[i + 1 :] == target:
                extra, last = typo[i], i == len(typo) - 1
                if extra == typo[i - 1] or (not last and (extra in VOWELS or extra == typo[i + 1])):
                    return "extra"
        return None
    if len(typo) + 1 == len(target):  # a dropped letter, inside the word
        return "drop" if any(target[:i] + target[i + 1 :] == typo for i in range(1, len(target) - 1)) else None
    return None


def correction(word: str, *, capitalised: bool = False) -> str | None:
    """The one confident correction of a lowercase word, or None to leave it as it is. `capitalised`: the word
    was written with a capital (at the start of a sentence), where names are common; names differ from words
    by a vowel often (Pothos, pathos), so that slip is not corrected there."""
    if len(word) < MIN_LENGTH or not word.isascii() or not word.isalpha() or known(word):
        return None
    from symspellpy import Verbosity

    allowed = {"swap", "extra", "drop"} if capitalised else {"swap", "extra", "drop", "vowel"}
    found = dictionary().lookup(word, Verbosity.ALL, max_edit_distance=1, transfer_casing=False)
    candidates = sorted(
        ((s.count, s.term) for s in found
         if s.distance == 1 and s.count >= MIN_TARGET_COUNT and slip(word, s.term) in allowed),
        reverse=True,
    )  # fmt: skip
    if not candidates:
        return None
    if len(candidates) > 1 and candidates[0][0] < CLEAR_WINNER * candidates[1][0]:
        return None
    return candidates[0][1]
