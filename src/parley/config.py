"""Settings: one typed object, from `PARLEY_*` environment variables and an optional TOML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class LlamaCppOptions(BaseModel):
    """How the embedded llama.cpp engine serves a GGUF file."""

    model: Path | None = Field(None, description="GGUF file to serve; default: the embedded SmolLM2-135M")
    slots: int = Field(4, ge=1, le=256, description="concurrent sequences decoded in one batch")
    ctx: int = Field(2048, ge=128, description="context window per slot, in tokens")
    batch_tokens: int = Field(512, ge=32, description="most tokens decoded in one engine step")
    prefill_chunk: int = Field(256, ge=16, description="most prompt tokens one request adds per step")
    max_queue: int = Field(64, ge=0, description="requests that may wait for a slot before 503")
    threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    share_prefixes: bool = Field(True, description="reuse prompt prefixes computed for other slots")
    kv_cache: Literal["f16", "q8_0"] = Field(
        "f16", description="KV cache precision; q8_0 needs ~45% less memory for ~6% slower decoding"
    )
    deterministic: bool = Field(
        False,
        description="batch-invariant decoding: a request's logits, so its greedy answer, do not depend on other "
        "requests or on the prefix cache (per-slot KV streams, shaped batches; slower prefill of long prompts)",
    )
    repack_weights: bool = Field(
        False,
        description="let llama.cpp repack weights for AMX/AVX2 kernels (faster prompts for Q4_0/Q4_K models "
        "on some CPUs; crashes this build on AMX CPUs, and greedy output then depends on the batch)",
    )


class LlamaCppSpec(LlamaCppOptions):
    """An embedded llama.cpp engine declared in settings (`[[engines]]` with `kind = "llamacpp"`)."""

    kind: Literal["llamacpp"] = "llamacpp"
    name: str | None = Field(None, description="the model id clients use; default: derived from the file")


class UpstreamReplica(BaseModel):
    """One server of an upstream: its OpenAI-compatible base URL (ending in `/v1`) and its share of requests."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="base URL, e.g. http://vllm-0:8000/v1")
    weight: float = Field(1.0, gt=0, description="share of requests, relative to the other replicas")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("an upstream URL starts with http:// or https://")
        return v.rstrip("/")


class UpstreamSpec(BaseModel):
    """An OpenAI-compatible server as the model stage (`[[engines]]` with `kind = "upstream"`): vLLM, TGI,
    Ollama, llama-server, or a hosted API. The whole pipeline runs in front of it (docs/scale.md)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["upstream"] = "upstream"
    name: str = Field(description="the model id clients use")
    model: str | None = Field(None, description="the model name the upstream serves; default: name")
    replicas: list[UpstreamReplica] = Field(min_length=1, description="servers of this model, tried by weight")
    flavor: Literal["vllm", "llamacpp", "openai"] = Field(
        "openai",
        description="which fields it takes beyond OpenAI's: vllm (structured_outputs, top_k, LoRA adapters at run "
        "time), llamacpp (llama-server or llama_cpp.server: GBNF grammar, top_k), openai (hosted APIs)",
    )
    api_key: str | None = Field(None, description="the upstream's key (prefer api_key_env)")
    api_key_env: str | None = Field(None, description="the environment variable that holds the upstream's key")
    context_window: int | None = Field(None, ge=1, description="default: what the upstream reports, else 4096")
    connect_timeout: float = Field(2.0, gt=0, description="seconds to open a connection to a replica")
    first_token_timeout: float = Field(60.0, gt=0, description="seconds from the request to its first token")
    read_timeout: float = Field(60.0, gt=0, description="longest silence between two chunks, in seconds")
    retries: int = Field(1, ge=0, description="other replicas tried when one fails before the first token")
    health_interval: float = Field(5.0, gt=0, description="seconds between health checks of each replica")
    health_path: str = Field("/models", description="GET under the base URL that answers 200 when healthy")
    breaker_failures: int = Field(3, ge=1, description="failures in a row that open a replica's circuit")
    breaker_open_seconds: float = Field(30.0, gt=0, description="how long an open circuit refuses requests")
    adapters: bool = Field(False, description="vllm: load the registry's LoRA adapters into it at run time")
    structured_output: bool = Field(
        True, description="false for a server without constrained decoding: JSON response formats are refused"
    )

    def key(self) -> str | None:
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or self.api_key
        return self.api_key


class McpServerSpec(BaseModel):
    """An MCP server whose tools Parley may run for a chat that opts in (docs/tools.md). Exactly one of `url`
    (streamable HTTP) and `command` (a program spoken to over stdio)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="what requests and profiles call it")
    url: str | None = Field(None, description="streamable HTTP endpoint, e.g. http://tools:9000/mcp")
    command: list[str] | None = Field(None, min_length=1, description="stdio: the program and its arguments")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: extra environment for the program")
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP: headers sent with every request")
    headers_env: dict[str, str] = Field(
        default_factory=dict, description="HTTP: header name → environment variable holding its value"
    )
    allow: list[str] = Field(description='the tools the model may call: names, or ["*"] for all the server lists')
    connect_timeout: float = Field(10.0, gt=0, description="seconds to connect and list the tools")
    call_timeout: float = Field(30.0, gt=0, description="longest one tool call may take, in seconds")
    max_result_chars: int = Field(8000, ge=100, description="a longer result is cut to this for the model")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.url is None) == (self.command is None):
            raise ValueError(f"MCP server {self.name!r}: give exactly one of url and command")
        return self

    def allows(self, tool: str) -> bool:
        return "*" in self.allow or tool in self.allow

    def http_headers(self) -> dict[str, str]:
        return self.headers | {h: os.environ.get(var, "") for h, var in self.headers_env.items()}


# Engine kinds, by their `kind` field. A new kind: its spec here and its loader in engines/registry.py.
EngineSpec = Annotated[LlamaCppSpec | UpstreamSpec, Field(discriminator="kind")]


class Settings(BaseSettings, LlamaCppOptions):
    """Everything a deployment can tune. CLI flags override environment, which overrides the TOML file.

    The llama.cpp fields at the top level describe the one embedded engine served when `engines` is empty.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    model_name: str | None = Field(None, description="id the API lists; default: derived from the file")
    engines: list[EngineSpec] = Field(
        default_factory=list, description="engines to serve, by kind; default: one embedded llama.cpp engine"
    )

    # Tools Parley runs itself, from MCP servers (docs/tools.md).
    mcp_servers: list[McpServerSpec] = Field(default_factory=list, description="MCP servers chats may opt in to")
    mcp_max_steps: int = Field(4, ge=1, le=32, description="model turns that may call tools, per request")
    mcp_time_budget: float = Field(60.0, gt=0, description="seconds a request's tool loop may take in all")

    # The pipeline: which steps run, in order; default: every default step (docs/pipeline.md lists them).
    preprocess_steps: list[str] | None = Field(None, description="e.g. normalize,guard_input,render,limits")
    postprocess_steps: list[str] | None = Field(None, description="e.g. leaked_tokens,output_guard,fences")

    # Request limits.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    drain_seconds: float = Field(
        30.0, ge=0, description="on SIGTERM: how long requests in flight may take to finish before the server exits"
    )
    max_messages: int = Field(512, ge=1)

    # Storage, security, scale-out.
    data_dir: Path = Field(Path.home() / ".parley", description="where the embedded SQLite database lives")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir")
    auto_migrate: bool = Field(True, description="bring the database schema up to date at start")
    completion_log: bool = Field(True, description="record every turn (redacted) for feedback and fine-tuning")
    log_retention_days: int = Field(30, ge=0, description="delete unrated log rows older than this; 0 keeps all")
    adapter_poll_seconds: float = Field(2.0, gt=0, description="how often the adapter registry is checked")
    redis_url: str | None = Field(None, description="shared rate-limit buckets across replicas")
    insecure: bool = Field(False, description="allow serving a non-loopback address with no API keys")
    max_message_chars: int = Field(200_000, ge=1)
    guards: bool = Field(True, description="input and output guards (docs/security.md)")
    guard_policy: str = Field("", description="overrides of the default guard policy, e.g. 'pii=flag'")
    guard_reader_nice: int = Field(
        10, ge=0, le=19, description="CPU niceness of the process that finishes the injection classifier's "
        "readings while the model answers (docs/security.md): higher leaves decoding more of the cores, and the "
        "readings, hence the ends of answers, take longer under load",
    )
    link_allowlist: list[str] = Field(
        default_factory=list, description="hosts answers may link or show images from (e.g. docs.example.com, "
        "*.example.com); links elsewhere are defanged and images removed (guard policy `links`)",
    )
    topic: str | None = Field(None, description="what this deployment is for; off-topic questions are refused")
    topic_threshold: float = Field(0.2, ge=-1, le=1, description="least cosine similarity to the topic")
    profiles_file: Path | None = Field(None, description="use-case profiles (TOML); default: data_dir/profiles.toml")
    params_explore: float = Field(0.2, ge=0, le=1, description="adaptive profiles: share of requests that explore")

    log_level: str = "info"
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="also serve /metrics, without a key, here")
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces")
    otel_service_name: str = "parley"

    def profiles_path(self) -> Path:
        return self.profiles_file or self.data_dir / "profiles.toml"

    def db_url(self) -> str:
        from parley.store.db import default_url

        return self.database_url or default_url(self.data_dir)

    def engine_specs(self) -> list[EngineSpec]:
        """The engines to serve: those declared, or the embedded one described by the top-level fields."""
        if self.engines:
            return list(self.engines)
        options = self.model_dump(include=set(LlamaCppOptions.model_fields))
        return [LlamaCppSpec(name=self.model_name, **options)]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("PARLEY_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)
