"""A profile: a named use case. What the model is told (a sandboxed Jinja2 system prompt, few-shot examples),
how it samples, what form the answer takes, which post-processing steps and guard policies apply, what topic
it is kept to, and which model or adapter serves it. Validated whole before it is used or stored."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from parley.schema_grammar import SchemaInvalid, SchemaUnenforceable, schema_grammar

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
Format = Literal["chat", "docs", "plain", "json"]
Tier = Literal["simple", "moderate", "complex"]
FORMATS: tuple[str, ...] = ("chat", "docs", "plain", "json")

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ValueError("a profile name is 1-64 characters: lowercase letters, digits, '_', '-', '.'")
    return name


class Example(BaseModel):
    """A few-shot pair: put before the conversation as a user message and the answer wanted."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    assistant: str = Field(min_length=1)


class ProfileParams(BaseModel):
    """Default sampling parameters: used where the request leaves a parameter unset."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    system_prompt: str = Field("", description="a Jinja2 template (sandboxed); see docs/profiles.md")
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)
    params: ProfileParams = Field(default_factory=ProfileParams)
    adaptive: bool = Field(False, description="let ratings choose the parameters the request leaves unset")
    format: Format = "chat"
    json_schema: dict[str, Any] | None = Field(None, description="format json: the schema the answer must match")
    max_paragraphs: int | None = Field(None, ge=1, description="format chat: end the answer after this many")
    steps: list[str] | None = Field(None, description="post-processing steps; default: the server's")
    guard_policy: str = Field("", description="overrides of the guard policy, e.g. 'pii=flag,off_topic=block'")
    topic: str | None = Field(None, description="questions off this topic get a polite refusal")
    model: str | None = Field(None, description="the model or adapter; default: the one the request names")
    route: dict[Tier, str] | None = Field(
        None,
        description="the model by the prompt's complexity tier (simple, moderate, complex), e.g. simple prompts "
        "to the embedded model and complex ones to an upstream; a tier left out goes to `model`",
    )
    mcp_servers: list[str] = Field(
        default_factory=list, description="MCP servers (of the settings) whose allowed tools this profile's chats use"
    )
    mcp_max_steps: int | None = Field(None, ge=1, le=32, description="default: the server's mcp_max_steps")
    builtin: bool = Field(False, exclude=True)
    _grammar: str | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v) if v else v

    @field_validator("system_prompt")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            _env.parse(v)
        except TemplateError as exc:
            raise ValueError(f"system_prompt is not a valid template: {exc}") from exc
        return v

    @field_validator("guard_policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        from parley.guards.base import Policy

        Policy.parse(v)  # raises ValueError naming the bad item
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.json_schema is not None:
            if self.format != "json":
                raise ValueError("json_schema needs format = 'json'")
            try:
                self._grammar = schema_grammar(self.json_schema)  # compiled once, not per request
            except SchemaInvalid as exc:
                raise ValueError(f"json_schema is not a valid JSON schema: {exc}") from exc
            except SchemaUnenforceable as exc:
                raise ValueError(f"json_schema cannot be enforced: {exc}") from exc
        self.render_system_prompt(metadata={}, model="model")  # every variable it uses must be defined
        return self

    def grammar(self) -> str:
        """The GBNF grammar that constrains a `json` answer."""
        from llama_cpp.llama_grammar import JSON_GBNF

        return self._grammar or JSON_GBNF

    def render_system_prompt(self, *, metadata: dict[str, Any], model: str) -> str:
        """The system prompt for one request. Variables: the profile's `variables`, `profile`, `model`,
        `topic`, `date` (ISO), `metadata` (the request's `metadata` object; use `metadata.get('k', '')`)."""
        if not self.system_prompt:
            return ""
        now = dt.datetime.now(dt.UTC)
        context = {"profile": self.name, "model": model, "topic": self.topic or "", "date": now.date().isoformat(),
                   "metadata": dict(metadata), **self.variables}  # fmt: skip
        try:
            return _env.from_string(self.system_prompt).render(context).strip()
        except TemplateError as exc:  # an undefined variable, or what the sandbox refused
            raise ValueError(f"system_prompt cannot be rendered: {exc}") from exc

    def public(self) -> dict[str, Any]:
        """As the API shows it."""
        return {"object": "profile", **self.model_dump(mode="json", exclude_none=True), "builtin": self.builtin}
