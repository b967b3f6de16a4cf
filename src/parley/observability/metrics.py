"""Prometheus metrics, with vLLM's names and meanings under a `parley_` prefix.

Turn metrics are recorded once per turn, by a turn-end observer (`Metrics.observe_turn`), from what the turn
carries: nothing is counted inside the stages. What other parts already count (the engine's slots, queue and
prefix cache, the completion log's writer, the rate limiter) is read when Prometheus scrapes, by
`LiveCollector`, so there is no second bookkeeping. HTTP requests that never became a turn (a 401, a 429) are
counted by `HttpMetrics`, an ASGI middleware, under the route's template.

Each app has its own `CollectorRegistry`: several apps in one process (tests) never share counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.asgi import on_response_start
from parley.errors import ParleyError
from parley.pipeline.context import TurnContext
from parley.pipeline.turn import Turn
from parley.pipeline.verdicts import guard_actions

if TYPE_CHECKING:
    from parley.completion_log import CompletionLog
    from parley.engines.registry import EngineRegistry
    from parley.server.auth import AccessControl

# vLLM's buckets (vllm/v1/metrics/loggers.py), so dashboards built for vLLM read these the same way.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
               80.0)  # fmt: skip
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                   480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0)  # fmt: skip
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)

disable_created_metrics()  # as vLLM does: no `_created` series beside every counter and histogram

# the replica-wide totals the dashboard shows beside the store's figures
LIVE_TOTALS = ("parley_rate_limit_rejections", "parley_completion_log_write_failures",
               "parley_completion_log_backlog", "parley_turn_end_observer_failures")  # fmt: skip

ROUTES = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
CLIENT_CLOSED = "499"  # nginx's status for a client that went away before the answer ended


def turn_status(turn: Turn) -> str:
    """The HTTP status the turn ended with (a stream's status line said 200; this is how it really ended)."""
    if turn.outcome == "cancelled":
        return CLIENT_CLOSED
    if turn.error is None:
        return "200"
    return str(turn.error.status) if isinstance(turn.error, ParleyError) else "500"


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, labels: list[str], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=r)

        model = ["model_name"]
        self.requests = counter("parley_requests", "Turns (chat and text completions) by how they ended.",
                                ["route", "status", "model_name", "adapter", "profile"])  # fmt: skip
        self.request_success = counter("parley_request_success", "Turns that finished, by finish reason.",
                                       [*model, "finished_reason"])  # fmt: skip
        self.prompt_tokens = counter("parley_prompt_tokens", "Prompt tokens processed.", model)
        self.generation_tokens = counter("parley_generation_tokens", "Tokens generated.", model)
        self.request_prompt_tokens = histogram("parley_request_prompt_tokens", "Prompt tokens per request.", model,
                                               TOKEN_BUCKETS)  # fmt: skip
        self.request_generation_tokens = histogram("parley_request_generation_tokens", "Tokens generated per "
                                                   "request.", model, TOKEN_BUCKETS)  # fmt: skip
        self.ttft = histogram("parley_time_to_first_token_seconds", "Time to first token, from the request's "
                              "arrival in the pipeline.", model, TTFT_BUCKETS)  # fmt: skip
        self.itl = histogram("parley_inter_token_latency_seconds", "Time between consecutive tokens.", model,
                             ITL_BUCKETS)  # fmt: skip
        self.e2e = histogram("parley_e2e_request_latency_seconds", "Request latency, arrival to last token.", model,
                             REQUEST_BUCKETS)  # fmt: skip
        self.queue = histogram("parley_request_queue_time_seconds", "Time a request waited for a slot.", model,
                               REQUEST_BUCKETS)  # fmt: skip
        self.stage = histogram("parley_stage_duration_seconds", "Time spent in each pipeline stage (its own time, "
                               "upstream stages excluded).", ["stage"], STEP_BUCKETS)  # fmt: skip
        self.step = histogram("parley_step_duration_seconds", "Time spent in each pipeline step.", ["stage", "step"],
                              STEP_BUCKETS)  # fmt: skip
        self.guard_verdicts = counter("parley_guard_verdicts", "Guard findings by side, scanner and the action "
                                      "taken.", ["side", "scanner", "action"])  # fmt: skip
        self.routes = counter("parley_route", "Turns by the route the model stage took (engine kind, model, and "
                              "an upstream's replica) and the profile.", ["profile", "route"])  # fmt: skip
        self.feedback = counter("parley_feedback", "Ratings received, by rating.", ["rating"])
        self.mcp_calls = counter("parley_mcp_tool_calls", "Tool calls Parley ran on MCP servers, by outcome (ok, "
                                 "error, timeout, unavailable).", ["server", "tool", "outcome"])  # fmt: skip
        self.http_requests = counter("parley_http_requests", "HTTP requests by method, route template and status.",
                                     ["method", "route", "status"])  # fmt: skip
        self.http_latency = histogram("parley_http_request_duration_seconds", "HTTP request duration, to the last "
                                      "byte sent.", ["method", "route"], REQUEST_BUCKETS)  # fmt: skip

    def watch(self, engines: EngineRegistry, access: AccessControl, log: CompletionLog | None,
              observer_failures: Callable[[], int]) -> None:  # fmt: skip
        """Read what these parts count when Prometheus scrapes."""
        self.registry.register(LiveCollector(engines, access, log, observer_failures))

    async def observe_turn(self, turn: Turn, ctx: TurnContext) -> None:
        """Turn-end observer: every turn metric, from the finished turn."""
        model = ctx.engine.info.id if ctx.engine is not None else (turn.model or "unknown")
        adapter = turn.adapter.name if turn.adapter is not None else ""
        profile = turn.profile.name if turn.profile is not None else ""
        self.requests.labels(ROUTES[turn.kind], turn_status(turn), model, adapter, profile).inc()
        for side, scanner, action in guard_actions(turn):
            self.guard_verdicts.labels(side, scanner, action).inc()
        for entry in turn.trace:
            self.stage.labels(entry.stage).observe(entry.duration_ms / 1000)
            for step in entry.steps:
                self.step.labels(entry.stage, step.step).observe(step.duration_ms / 1000)
        if turn.route:
            self.routes.labels(profile, turn.route).inc()
        if ctx.engine is None or turn.params is None:
            return  # refused before it reached a model: no tokens, no latency to speak of
        usage, timing = turn.usage, turn.timing
        self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.generation_tokens.labels(model).inc(usage.completion_tokens)
        self.request_prompt_tokens.labels(model).observe(usage.prompt_tokens)
        self.request_generation_tokens.labels(model).observe(usage.completion_tokens)
        if turn.outcome == "finished":
            self.request_success.labels(model, turn.finish_reason or "stop").inc()
        if timing.ttft_s is not None:
            self.ttft.labels(model).observe(timing.ttft_s)
        if timing.queued_s is not None:
            self.queue.labels(model).observe(timing.queued_s)
        if timing.latency_s is not None:
            self.e2e.labels(model).observe(timing.latency_s)
        itl = self.itl.labels(model)
        for gap in timing.itl_s:
            itl.observe(gap)

    def rated(self, rating: str) -> None:
        self.feedback.labels(rating).inc()

    def live(self) -> dict[str, Any]:
        """This replica's gauges and counters, read from the registry as a scrape would."""
        wanted = {"parley_num_requests_running": "running", "parley_num_requests_waiting": "waiting"}
        models: dict[str, dict[str, float]] = {}
        other: dict[str, float] = {}
        for family in self.registry.collect():
            for s in family.samples:
                if family.name in wanted:
                    models.setdefault(s.labels["model_name"], {})[wanted[family.name]] = s.value
                elif family.name in LIVE_TOTALS and not s.name.endswith("_created"):
                    other[s.name] = other.get(s.name, 0.0) + s.value
        return {"models": models, **other}


class LiveCollector(Collector):
    """Gauges and counters that other parts keep, read at scrape time."""

    def __init__(self, engines: EngineRegistry, access: AccessControl, log: CompletionLog | None,
                 observer_failures: Callable[[], int]) -> None:  # fmt: skip
        self.engines, self.access, self.log, self.observer_failures = engines, access, log, observer_failures

    def collect(self) -> Iterator[Any]:
        running = GaugeMetricFamily("parley_num_requests_running", "Requests in a slot, generating.",
                                    labels=["model_name"])  # fmt: skip
        waiting = GaugeMetricFamily("parley_num_requests_waiting", "Requests waiting for a slot.",
                                    labels=["model_name"])  # fmt: skip
        queries = CounterMetricFamily("parley_prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
                                      labels=["model_name"])  # fmt: skip
        hits = CounterMetricFamily("parley_prefix_cache_hits", "Prompt tokens found in the prefix cache.",
                                   labels=["model_name"])  # fmt: skip
        for name, engine in list(self.engines.engines.items()):
            s = engine.status()
            running.add_metric([name], s.get("slots_busy", 0))
            waiting.add_metric([name], s.get("queued", 0))
            queries.add_metric([name], s.get("prompt_tokens", 0))
            hits.add_metric([name], s.get("prompt_tokens_cached", 0))
        yield from (running, waiting, queries, hits)
        yield from upstream_families(self.engines)
        limited = CounterMetricFamily("parley_rate_limit_rejections", "Requests refused with 429, by the limit "
                                      "reached.", labels=["limit"])  # fmt: skip
        for limit, n in self.access.rejections.items():
            limited.add_metric([limit], n)
        yield limited
        failures = self.log.counters.write_failures if self.log is not None else 0
        yield CounterMetricFamily("parley_completion_log_write_failures", "Failed attempts to write completion log "
                                  "rows (each is retried; rows are never dropped).", value=failures)  # fmt: skip
        if self.log is not None:
            rows = CounterMetricFamily("parley_completion_log_rows", "Completion log rows by what became of them.",
                                       labels=["state"])  # fmt: skip
            c = self.log.counters
            for state, n in (("written", c.written), ("spilled", c.spilled), ("refused", c.refused)):
                rows.add_metric([state], n)
            yield rows
            yield GaugeMetricFamily("parley_completion_log_backlog", "Rows queued for the writer.",
                                    value=self.log.backlog())  # fmt: skip
        yield CounterMetricFamily("parley_turn_end_observer_failures", "Turn-end observers that raised.",
                                  value=self.observer_failures())  # fmt: skip


def upstream_families(engines: EngineRegistry) -> Iterator[Any]:
    """Each upstream replica's requests by outcome, its health and whether its circuit is open."""
    requests = CounterMetricFamily("parley_upstream_requests", "Requests sent to an upstream replica, by how "
                                   "they ended (ok, error, overloaded, rejected, cancelled).",
                                   labels=["engine", "replica", "outcome"])  # fmt: skip
    breaker = GaugeMetricFamily("parley_upstream_breaker_open", "1 while a replica's circuit is open (refusing "
                                "requests), else 0.", labels=["engine", "replica"])  # fmt: skip
    healthy = GaugeMetricFamily("parley_upstream_healthy", "1 while a replica passes its health checks.",
                                labels=["engine", "replica"])  # fmt: skip
    for name, engine in list(engines.engines.items()):
        for replica in engine.status().get("replicas", []):
            url = replica["url"]
            for outcome, n in replica["requests"].items():
                requests.add_metric([name, url, outcome], n)
            breaker.add_metric([name, url], 1.0 if replica["circuit"] == "open" else 0.0)
            healthy.add_metric([name, url], 1.0 if replica["healthy"] else 0.0)
    yield from (requests, breaker, healthy)


class HttpMetrics:
    """ASGI middleware: every HTTP request by method, route template (never the raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = "500"

        def see(message: Message) -> None:
            nonlocal status
            status = str(message["status"])

        try:
            await self.app(scope, receive, on_response_start(send, see))
        finally:
            route = route_of(scope)
            self.metrics.http_requests.labels(scope["method"], route, status).inc()
            self.metrics.http_latency.labels(scope["method"], route).observe(time.perf_counter() - start)


def route_of(scope: Scope) -> str:
    """The matched route's template (`/admin/keys/{key_id}`), `/static` for files, or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    if str(scope.get("path", "")).startswith("/static/"):
        return "/static"
    return "unmatched"
