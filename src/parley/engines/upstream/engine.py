"""An OpenAI-compatible server as the model stage. The pipeline sends messages (the upstream applies its own
chat template) and reads the upstream's stream chunk by chunk, with nothing buffered beyond one event.

The stream is read with aiohttp (its HTTP parser is in C): on two cores every microsecond spent per token in
this process is taken from the upstream's decoding, and httpx's pure-Python read path cost about twice as much
per event (bench/upstream.py). Health checks and discovery, off the request path, use httpx.

Failover: a request goes to a replica chosen by weight among those that are healthy and whose circuit is
closed; if it fails before its first token (connection refused, a 5xx, a timeout) the next replica is tried,
up to `retries` more. After the first token nothing is retried: the client has part of an answer, and gets
a clean error event instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
import httpx

from parley.config import UpstreamSpec
from parley.engines.base import AdapterRef, Capabilities, Chunk, GenerationRequest, ModelInfo
from parley.engines.upstream.replicas import Replica, ReplicaSet
from parley.engines.upstream.wire import (
    StreamState,
    UpstreamStreamError,
    error_message,
    final_chunk,
    parse_event,
    request_body,
)
from parley.errors import EngineOverloaded, EngineUnavailable, InvalidRequest

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096
OVERLOADED = (429, 503)  # the replica is busy, not broken: try another, and do not count it against its circuit


class ReplicaFailed(Exception):
    """A replica failed before the first token: another may be tried."""


class ReplicaOverloaded(ReplicaFailed):
    pass


class StaleConnection(ReplicaFailed):
    """The server closed a kept-alive connection as the request went out on it (llama-server closes one after a
    few requests): nothing reached it, so the same replica is asked again on a new connection."""


class UpstreamEngine:
    def __init__(self, spec: UpstreamSpec, *, start_health: bool = True) -> None:
        self.spec = spec
        key = spec.key()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.replicas = ReplicaSet(spec, self.headers, on_recovered=self.reload_adapters)
        self._sessions: dict[int, aiohttp.ClientSession] = {}  # one per event loop
        self.active = 0
        self.adapters: dict[str, tuple[AdapterRef, str]] = {}
        window, n_vocab = self._discover()
        self.info = ModelInfo(
            id=spec.name, kind="upstream", source=", ".join(r.url for r in spec.replicas),
            context_window=spec.context_window or window or DEFAULT_CONTEXT, n_vocab=n_vocab, created=int(time.time()),
            capabilities=Capabilities(chat_template=False, grammar=spec.structured_output, tools=True, logit_bias=True,
                                      adapters=spec.adapters and spec.flavor == "vllm", adapter_format="peft"),
            owned_by="upstream", details={"flavor": spec.flavor, "upstream_model": spec.model or spec.name},
        )  # fmt: skip
        if start_health:
            self.replicas.start()

    def _discover(self) -> tuple[int | None, int]:
        """The context window and vocabulary size the upstream reports for the model, if it is up now (vLLM:
        `max_model_len`; llama-server: `meta.n_ctx_train`, `meta.n_vocab`). A server may start before its
        upstream: then the settings' values stand."""
        wanted = self.spec.model or self.spec.name
        for replica in self.spec.replicas:
            try:
                r = httpx.get(replica.url + "/models", headers=self.headers, timeout=self.spec.connect_timeout)
                models = r.json().get("data") or []
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
            for m in models:
                if isinstance(m, dict) and (m.get("id") == wanted or len(models) == 1):
                    meta = m.get("meta") or {}
                    window = m.get("max_model_len") or meta.get("n_ctx_train")
                    return (int(window) if window else None), int(meta.get("n_vocab") or 0)
        return None, 0

    # -- what the pipeline asks of any engine ------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        raise InvalidRequest(f"The model `{self.info.id}` is served upstream: it counts its own tokens.")

    def detokenize(self, tokens: list[int]) -> str:
        raise InvalidRequest(f"The model `{self.info.id}` is served upstream: send a text prompt.", param="prompt")

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        raise InvalidRequest(f"The model `{self.info.id}` is served upstream: it applies its own chat template.")

    def special_token_texts(self) -> list[str]:
        return []  # upstreams drop special tokens from what they send

    def status(self) -> dict[str, Any]:
        return {"slots_busy": self.active, "queued": 0, "replicas": [r.status() for r in self.replicas.replicas]}

    def close(self) -> None:
        self.replicas.close()
        for session in self._sessions.values():
            with contextlib.suppress(RuntimeError):  # no running loop: the process is ending anyway
                asyncio.get_running_loop().create_task(session.close())
        self._sessions.clear()

    def _session(self) -> aiohttp.ClientSession:
        loop = id(asyncio.get_running_loop())
        session = self._sessions.get(loop)
        if session is None or session.closed:
            s = self.spec
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=s.connect_timeout, sock_read=s.read_timeout)
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=timeout, headers=self.headers
            )
        return session

    # -- generation --------------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> UpstreamStream:
        """Send the request to a replica and wait for its first token, failing over to another replica (up to
        `retries`) when one fails before it."""
        if request.prompt_tokens is not None:
            raise InvalidRequest(f"The model `{self.info.id}` is served upstream: send a text prompt.", param="prompt")
        body = request_body(self.spec, request)
        path = "/chat/completions" if request.messages is not None else "/completions"
        tried: list[str] = []
        failures: list[str] = []
        overloaded = 0
        for _ in range(self.spec.retries + 1):
            replica = self.replicas.pick(set(tried))
            if replica is None:
                break
            tried.append(replica.url)
            stream = UpstreamStream(self, replica, tried, failures)
            try:
                try:
                    await asyncio.wait_for(stream.open(path, body), self.spec.first_token_timeout)
                except StaleConnection:  # a kept-alive connection the server had closed: once more, afresh
                    stream = UpstreamStream(self, replica, tried, failures)
                    await asyncio.wait_for(stream.open(path, body), self.spec.first_token_timeout)
                return stream
            except ReplicaOverloaded as exc:
                overloaded += 1
                failures.append(f"{replica.url}: {exc}")
                await stream.abandon("overloaded", None)
            except (ReplicaFailed, aiohttp.ClientError, TimeoutError, UpstreamStreamError, ValueError) as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, TimeoutError):
                    reason = f"no first token in {self.spec.first_token_timeout:g} s"
                failures.append(f"{replica.url}: {reason}")
                log.warning("upstream %s: %s failed before the first token: %s", self.info.id, replica.url, reason)
                await stream.abandon("error", False)
            except BaseException:  # a 4xx the client must fix, or the client left
                await stream.abandon(None, None)
                raise
        retry_after = {"Retry-After": str(self.replicas.retry_after())}
        detail = "; ".join(failures) or "every replica is unhealthy or its circuit is open"
        if failures and overloaded == len(failures):
            raise EngineOverloaded(f"The upstream of `{self.info.id}` is at capacity: {detail}.", headers=retry_after)
        raise EngineUnavailable(f"The upstream of `{self.info.id}` is unavailable: {detail}.", headers=retry_after)

    # -- adapters (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING) -------------------------------------------

    async def load_adapter(self, ref: AdapterRef, path: str) -> None:
        """Load a PEFT adapter into every replica under the adapter's name; requests name it as the model."""
        for replica in self.replicas.replicas:
            await self._adapter_call(replica, "/load_lora_adapter", {"lora_name": ref.name, "lora_path": path})
        self.adapters[ref.name] = (ref, path)

    async def unload_adapter(self, ref: AdapterRef) -> None:
        """Every Parley replica asks; the first unloads it, the others find it gone (which is what they want)."""
        self.adapters.pop(ref.name, None)
        for replica in self.replicas.replicas:
            try:
                await self._adapter_call(replica, "/unload_lora_adapter", {"lora_name": ref.name})
            except ValueError as exc:
                log.warning("adapter %s: %s", ref.name, exc)

    async def _adapter_call(self, replica: Replica, path: str, body: dict[str, Any]) -> None:
        try:
            async with self._session().post(replica.url + path, json=body) as r:
                status, content = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ValueError(f"{replica.url} did not answer: {exc}") from exc
        _check_adapter_answer(replica.url, path, status, content)

    def reload_adapters(self, replica: Replica, client: httpx.Client) -> None:
        """A replica that comes back (after a restart, say) has forgotten the adapters loaded at run time: load
        them again before it takes requests. Called from the health thread."""
        for ref, path in list(self.adapters.values()):
            try:
                r = client.post(replica.url + "/load_lora_adapter", headers=self.headers,
                                json={"lora_name": ref.name, "lora_path": path})  # fmt: skip
                _check_adapter_answer(replica.url, "/load_lora_adapter", r.status_code, r.content)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("adapter %s not reloaded on %s: %s", ref.name, replica.url, exc)


def _check_adapter_answer(url: str, path: str, status: int, content: bytes) -> None:
    """vLLM answers 400 to loading an adapter that is loaded, and to unloading one that is not: with several
    Parley replicas each asking, that is the expected answer, not a failure."""
    if status == 200:
        return
    message = error_message(status, content)
    if "already" in message.lower() or (path.startswith("/unload") and status in (400, 404)):
        return
    raise ValueError(f"{url} refused {path}: {message}")


class UpstreamStream:
    """One request's stream from one replica. `open()` reads up to the first token; iteration reads the rest.
    The replica's circuit hears how it ended."""

    def __init__(self, engine: UpstreamEngine, replica: Replica, tried: list[str], failures: list[str]) -> None:
        self.engine, self.replica = engine, replica
        self.tried, self.failures = tried, failures
        self.state = StreamState()
        self.pending: list[Chunk] = []
        self.response: aiohttp.ClientResponse | None = None
        self.ended = False
        engine.active += 1

    async def open(self, path: str, body: dict[str, Any]) -> None:
        try:
            self.response = await self.engine._session().post(self.replica.url + path, json=body)
        except aiohttp.ClientConnectorError:
            raise  # no connection could be made: the replica is down
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:  # the connection was made, or reused
            await self.abandon(None, None)
            raise StaleConnection(str(exc) or "server disconnected") from exc
        status = self.response.status
        if status != 200:
            message = error_message(status, await self.response.read())
            if status in OVERLOADED:
                raise ReplicaOverloaded(f"HTTP {status}: {message}")
            if 400 <= status < 500:
                await self.abandon("rejected", True)  # the replica is fine; the request is not
                raise InvalidRequest(f"The upstream refused the request: {message}")
            raise ReplicaFailed(f"HTTP {status}: {message}")
        while not self.pending:  # the first token, or the end of an empty answer
            chunk = await self._next_event()
            if chunk is None:
                break
            self.pending.append(chunk)

    async def _next_event(self) -> Chunk | None:
        """The next chunk with content; None at the end of the stream. Raises ReplicaFailed on a stream that
        broke off."""
        assert self.response is not None
        content = self.response.content
        while not self.state.done:
            raw = await content.readline()
            if not raw:
                if self.state.finish_reason is not None:
                    return None  # some servers end without [DONE]
                raise ReplicaFailed("the stream ended before the answer did")
            chunk = parse_event(raw.decode("utf-8", "replace"), self.state)
            if chunk is not None:
                return chunk
        return None

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> Chunk:
        if self.pending:
            return self.pending.pop(0)
        if self.ended:
            raise StopAsyncIteration
        try:
            chunk = await self._next_event()
        except (ReplicaFailed, aiohttp.ClientError, TimeoutError, UpstreamStreamError, ValueError) as exc:
            await self.abandon("error", False)
            raise EngineUnavailable(
                f"The upstream of `{self.engine.info.id}` ({self.replica.url}) stopped mid-answer: "
                f"{str(exc) or type(exc).__name__}."
            ) from exc
        if chunk is not None:
            return chunk
        await self.abandon("ok", True)
        final = final_chunk(self.state)
        assert final.stats is not None
        final.stats.route = {"replica": self.replica.url, "attempts": len(self.tried),
                             **({"failed": list(self.failures)} if self.failures else {})}  # fmt: skip
        return final

    async def abandon(self, outcome: str | None, healthy: bool | None) -> None:
        """End this stream once: close the connection (the upstream stops generating) and tell the replica's
        circuit (True: it worked; False: it failed; None: no verdict)."""
        if self.ended:
            return
        self.ended = True
        self.engine.active -= 1
        if outcome is not None:
            self.replica.outcomes[outcome] += 1
        if healthy is True:
            self.replica.breaker.success()
        elif healthy is False:
            self.replica.breaker.failure()
        else:
            self.replica.breaker.release()
        if self.response is not None:
            if self.state.done:
                self.response.release()  # read to the end: the connection goes back to the pool
            else:
                self.response.close()  # the upstream sees the connection drop and stops generating

    async def stop(self) -> None:
        await self.abandon("ok", True)

    async def aclose(self) -> None:
        await self.abandon("cancelled", None)


def load_engine(spec: UpstreamSpec) -> UpstreamEngine:
    return UpstreamEngine(spec)
