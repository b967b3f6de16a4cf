"""Stage 1, input: resolve the model, accept OpenAI messages (string or content parts) or structured JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parley.errors import InvalidRequest, ProfileNotFound
from parley.pipeline.complexity import estimate
from parley.pipeline.context import TurnContext
from parley.pipeline.structured import parse_json_object, render_structured
from parley.pipeline.turn import Message, Turn
from parley.protocol.openai import ChatCompletionRequest, ChatMessage, CompletionRequest
from parley.tools.formats import ToolFormat, format_for
from parley.tools.spec import parse_tools

if TYPE_CHECKING:
    from parley.profiles.schema import Profile

MAX_STOP_SEQUENCES = 4
PROFILE_PREFIX = "profile/"

STRUCTURED_PREAMBLE = "Structured input (JSON, rendered as an outline):\n"


class InputStage:
    name = "input"

    def __init__(self, *, max_messages: int, max_message_chars: int) -> None:
        self.max_messages = max_messages
        self.max_message_chars = max_message_chars

    def run(self, turn: Turn, ctx: TurnContext) -> None:
        req = turn.request
        model: str | None = req.model
        if (name := self.profile_name(turn)) is not None:
            profile = ctx.profiles.get(name) if ctx.profiles is not None else None
            if profile is None:
                param = "model" if req.model.startswith(PROFILE_PREFIX) else "metadata.profile"
                raise ProfileNotFound(f"The profile `{name}` does not exist.", param=param)
            turn.profile, ctx.profile_policy = profile, profile.guard_policy
            if req.model.startswith(PROFILE_PREFIX):
                model = self._routed(turn, req, profile)  # None: the default model
            turn.note(self.name, profile=name)
        ctx.engine, turn.adapter = ctx.resolve(model)  # raises ModelNotFound
        turn.model = turn.adapter.name if turn.adapter is not None else ctx.engine.info.id
        wants_logprobs = req.logprobs is True if isinstance(req, ChatCompletionRequest) else req.logprobs is not None
        if wants_logprobs and not ctx.engine.info.capabilities.logprobs:
            raise InvalidRequest(f"The model `{turn.model}` does not give logprobs.", param="logprobs")
        if req.n != 1:  # the route runs n turns of n=1 (parley.pipeline.choices)
            raise InvalidRequest("n > 1 is served by the chat and completions routes only.", param="n")
        if req.stream_options is not None and not req.stream:
            raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")
        turn.stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(turn.stops) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(f"At most {MAX_STOP_SEQUENCES} stop sequences are allowed.", param="stop")
        if isinstance(req, ChatCompletionRequest):
            self._chat(turn, req, ctx)
        else:
            self._completion(turn, req)

    def _routed(self, turn: Turn, req: ChatCompletionRequest | CompletionRequest, profile: Profile) -> str | None:
        """The profile's model; with `route`, the model for the prompt's complexity tier (the same estimate
        that sets the token budget), and the reason in the trace."""
        if not profile.route:
            return profile.model
        if isinstance(req, ChatCompletionRequest):
            users = [m for m in req.messages if m.role == "user"]
            text = message_text(users[-1], "messages[-1]")[0] if users else ""
        else:
            text = req.prompt if isinstance(req.prompt, str) else ""
        guess = estimate(text)
        chosen = profile.route.get(guess.tier)  # type: ignore[call-overload]
        turn.note(self.name, route={"tier": guess.tier, "score": guess.score, "model": chosen or profile.model,
                                    "by": "complexity" if chosen else "profile model"})  # fmt: skip
        return chosen or profile.model

    @staticmethod
    def profile_name(turn: Turn) -> str | None:
        """The profile asked for: `model: "profile/NAME"`, the `X-Parley-Profile` header, or
        `metadata.profile`; two that disagree are an error."""
        req = turn.request
        metadata = (req.model_extra or {}).get("metadata")
        asked = {
            "model": req.model.removeprefix(PROFILE_PREFIX) if req.model.startswith(PROFILE_PREFIX) else None,
            "X-Parley-Profile": turn.profile_name or None,
            "metadata.profile": metadata.get("profile") if isinstance(metadata, dict) else None,
        }
        named = {where: name for where, name in asked.items() if name is not None}
        if any(not isinstance(name, str) for name in named.values()):
            raise InvalidRequest("metadata.profile must be a string.", param="metadata.profile")
        if len(set(named.values())) > 1:
            raise InvalidRequest(
                "The request names two profiles: " + ", ".join(f"{w} = {n!r}" for w, n in named.items()) + ".",
                param=next(iter(named)),
            )
        return next(iter(named.values()), None)

    def _chat(self, turn: Turn, req: ChatCompletionRequest, ctx: TurnContext) -> None:
        info = ctx.engine_required.info
        turn.tool_format = format_for(info.details.get("template"))
        if req.tools:
            if not info.capabilities.tools:
                raise InvalidRequest(f"The model `{turn.model}` takes no tools.", param="tools")
            turn.tools = parse_tools(req.tools, req.tool_choice, req.model_extra.get("parallel_tool_calls"))
        elif req.tool_choice not in (None, "none", "auto"):
            raise InvalidRequest("tool_choice needs tools.", param="tool_choice")
        if req.top_logprobs is not None and not req.logprobs:
            raise InvalidRequest("top_logprobs needs logprobs: true.", param="top_logprobs")
        if len(req.messages) > self.max_messages:
            raise InvalidRequest(f"At most {self.max_messages} messages are allowed.", param="messages")
        structured = 0
        fmt = turn.tool_format
        for i, msg in enumerate(req.messages):
            calls = (msg.model_extra or {}).get("tool_calls") if msg.role == "assistant" else None
            if calls or msg.role == "tool":
                turn.messages.append(tool_message(msg, calls, fmt, f"messages[{i}]") if info.capabilities.chat_template
                                     else openai_tool_message(msg, calls, f"messages[{i}]"))  # fmt: skip
                continue
            message, was_structured = chat_message(msg, f"messages[{i}]")
            if len(message.content) > self.max_message_chars:
                raise InvalidRequest(
                    f"messages[{i}] is longer than {self.max_message_chars} characters.", param=f"messages[{i}].content"
                )
            structured += was_structured
            turn.messages.append(message)
        turn.note(self.name, messages=len(turn.messages), structured_messages=structured)

    def _completion(self, turn: Turn, req: CompletionRequest) -> None:
        prompt = req.prompt
        unsupported = {"suffix": req.suffix, "best_of": (req.best_of or 1) > 1}
        for param, value in unsupported.items():
            if value:
                raise InvalidRequest(f"`{param}` is not supported by this server.", param=param)
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            if len(prompt) != 1:
                raise InvalidRequest("Only one prompt per request is supported.", param="prompt")
            prompt = prompt[0]
        if isinstance(prompt, list) and not prompt:
            raise InvalidRequest("The prompt must not be empty.", param="prompt")
        turn.raw_prompt = prompt  # type: ignore[assignment]
        turn.note(self.name, prompt_kind="tokens" if isinstance(prompt, list) else "text")


def tool_message(msg: ChatMessage, calls: Any, fmt: ToolFormat, where: str) -> Message:
    """An assistant's tool calls, or a tool's result, as the template's tool format writes them."""
    if msg.role == "tool":
        content, _ = message_text(msg, where)
        return Message(fmt.result_role, fmt.render_result(content))
    if not isinstance(calls, list):
        raise InvalidRequest("tool_calls must be a list.", param=f"{where}.tool_calls")
    parts = [message_text(msg, where)[0]] if msg.content else []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("A tool call needs function.name.", param=f"{where}.tool_calls[{j}]")
        parts.append(fmt.render_call(function["name"], str(function.get("arguments") or "")))
    return Message("assistant", "\n".join(parts))


def openai_tool_message(msg: ChatMessage, calls: Any, where: str) -> Message:
    """A tool turn as OpenAI writes it, for an engine that renders tool turns itself (an upstream server)."""
    content = message_text(msg, where)[0] if msg.content is not None else ""
    if msg.role == "tool":
        return Message("tool", content, {"tool_call_id": (msg.model_extra or {}).get("tool_call_id")})
    if not isinstance(calls, list):
        raise InvalidRequest("tool_calls must be a list.", param=f"{where}.tool_calls")
    return Message("assistant", content, {"tool_calls": calls})


def chat_message(msg: ChatMessage, where: str) -> tuple[Message, bool]:
    """The message as the chat template takes it (OpenAI's `developer` role is a system message), and
    whether it came from a structured JSON object."""
    text, structured = message_text(msg, where)
    return Message("system" if msg.role == "developer" else msg.role, text), structured


def message_text(msg: ChatMessage, where: str) -> tuple[str, bool]:
    """The message's text, and whether it came from a structured JSON object."""
    content: Any = msg.content
    if content is None:
        if msg.role == "assistant":
            return "", False
        raise InvalidRequest(f"{where}.content is required for role '{msg.role}'.", param=f"{where}.content")
    if isinstance(content, dict):
        return STRUCTURED_PREAMBLE + render_structured(content), True
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif kind == "text":
                raise InvalidRequest("A text part needs a string `text`.", param=f"{where}.content[{j}].text")
            else:
                raise InvalidRequest(
                    f"Content part type {kind!r} is not supported by this model (text only).",
                    param=f"{where}.content[{j}].type",
                )
        content = "\n".join(parts)
    if msg.role == "user" and (obj := parse_json_object(content)) is not None:
        return STRUCTURED_PREAMBLE + render_structured(obj), True
    return content, False
