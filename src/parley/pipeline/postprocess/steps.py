"""The post-processing steps there are: each builds one incremental filter for a turn, when it applies.

JSON answers are shaped by the grammar, so they get only the token stripper and the output guard; raw
completions are continuations, so they are not trimmed to sentences or given closing fences; `ignore_eos`
requests (benchmarks) ask for exactly `max_tokens`, so only the guards may end them.
"""

from __future__ import annotations

from parley.pipeline.context import TurnContext
from parley.pipeline.postprocess.cleanup import FenceCloser, LeakedTokenStripper, RepetitionCutter, TruncationTrimmer
from parley.pipeline.stage import BaseStep, TextFilter
from parley.pipeline.turn import Turn


def shapes_prose(turn: Turn) -> bool:
    """Free text that the clean-up may reshape: not JSON, not a benchmark's fixed-length answer."""
    return not turn.constrained and not turn.request.ignore_eos


class LeakedTokens(BaseStep):
    name = "leaked_tokens"


    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        strip = LeakedTokenStripper(ctx.engine_required.special_token_texts())
        if turn.request.ignore_eos:  # nothing but security ends a fixed-length answer
            strip.ends = set()
        return strip


class Html(BaseStep):
    """HTML/JS sanitising of markdown a page will render, and the exfiltration defence for its images and links
    (policy `links`, the `link_allowlist` setting); before the output guard, so that removing a tag cannot join
    the halves of a secret the guard would have seen apart."""

    name = "html"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        if ctx.guards is None or turn.constrained:
            return False
        actions = ctx.guards.output_policy(ctx.key_policy).actions
        return "html" in actions or "links" in actions

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        from parley.guards.html import HtmlSanitizer

        assert ctx.guards is not None
        actions = ctx.guards.output_policy(ctx.key_policy).actions
        return HtmlSanitizer(links=ctx.guards.links if "links" in actions else None, html="html" in actions)


class OutputGuard(BaseStep):
    name = "output_guard"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return ctx.guards is not None

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        assert ctx.guards is not None
        return ctx.guards.output_guard(ctx.key_policy, turn.guard.canary, turn.guard.system_prompt, turn.guard.dictated)


class Repetition(BaseStep):
    name = "repetition"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return shapes_prose(turn)

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        return RepetitionCutter()


class Truncation(BaseStep):
    name = "truncation"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return turn.kind == "chat" and shapes_prose(turn)

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        return TruncationTrimmer()


class Fences(BaseStep):
    name = "fences"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return turn.kind == "chat" and shapes_prose(turn)

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        return FenceCloser()


class Format(BaseStep):
    """The profile's output format (formats.py); a request without a profile is left as the model wrote it."""

    name = "format"

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        profile = turn.profile
        if profile is None or turn.kind != "chat" or not shapes_prose(turn):
            return False
        return profile.format in ("docs", "plain") or (profile.format == "chat" and profile.max_paragraphs is not None)

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        from parley.pipeline.postprocess.formats import ChatFormatter, DocsFormatter, PlainFormatter

        profile = turn.profile
        assert profile is not None
        if profile.format == "docs":
            question = next((m.content for m in reversed(turn.messages) if m.role == "user"), "")
            return DocsFormatter(question)
        if profile.format == "plain":
            return PlainFormatter()
        assert profile.max_paragraphs is not None
        return ChatFormatter(profile.max_paragraphs)


class Grammar(BaseStep):
    """Spelling, doubled words, spacing and punctuation (grammar.py); only where a profile or the settings
    name it."""

    name = "grammar"
    default = False

    def applies(self, turn: Turn, ctx: TurnContext) -> bool:
        return shapes_prose(turn)

    def build(self, turn: Turn, ctx: TurnContext) -> TextFilter:
        from parley.pipeline.postprocess.grammar import GrammarPass

        return GrammarPass()
