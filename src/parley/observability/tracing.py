"""OpenTelemetry traces: one span per turn, a child per stage and one per step, sent to an OTLP/HTTP endpoint.

Off unless an endpoint is configured (`--otlp-endpoint`); then the OpenTelemetry SDK is imported and a
turn-end observer builds the spans after the fact from the windows the turn recorded, so the stages carry no
tracing code and a server without an endpoint pays nothing. A request's W3C `traceparent` header makes the turn
a child of the caller's span.

Stages and the steps that run in one piece (input, preprocessing, the model's parameter step) have their real
start and end. A streaming stage (model, output, post-processing) spans its first to its last delta, with its
own busy time in `parley.busy_ms`. A streaming step's work is spread over the stream: its span starts with its
stage and lasts its total busy time (`parley.cumulative = true`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from parley.pipeline.context import TurnContext
from parley.pipeline.turn import Turn
from parley.pipeline.verdicts import guard_actions

log = logging.getLogger(__name__)

DETAIL_LIMIT = 4000  # characters of a stage's or step's decisions kept as an attribute
PRIVATE = ("raw_text",)  # never exported: the model's text before the output guard


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


class TurnTracer:
    def __init__(self, endpoint: str, service_name: str = "parley", *, exporter: Any = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint)
        from parley import __version__

        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name,
                                                                 "service.version": __version__}))  # fmt: skip
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self.tracer = self.provider.get_tracer("parley")

    async def observe(self, turn: Turn, ctx: TurnContext) -> None:
        """Turn-end observer: the turn's spans, queued for the exporter's thread."""
        from opentelemetry.propagate import extract
        from opentelemetry.trace import Status, StatusCode, set_span_in_context

        from parley.observability.logs import request_id, traceparent

        timing = turn.timing
        end = timing.ended if timing.ended is not None else timing.started
        parent = traceparent.get()
        context = extract({"traceparent": parent}) if parent else None
        root = self.tracer.start_span(f"{turn.kind} {turn.model}".strip(), context=context,
                                      start_time=ns(timing.started_at),
                                      attributes=self._turn_attributes(turn))  # fmt: skip
        rid = request_id.get()
        if rid:
            root.set_attribute("parley.request_id", rid)
        if turn.error is not None:
            root.set_status(Status(StatusCode.ERROR, f"{type(turn.error).__name__}: {turn.error}"[:500]))
        inside = set_span_in_context(root)
        for entry in turn.trace:
            start, stop = turn.windows.get(entry.stage) or (end - entry.duration_ms / 1000, end)
            stage = self.tracer.start_span(entry.stage, context=inside, start_time=ns(turn.timing.wall(start)),
                                           attributes={"parley.stage": entry.stage, "parley.busy_ms": entry.duration_ms,
                                                       **_detail(entry.detail)})  # fmt: skip
            in_stage = set_span_in_context(stage)
            for step in entry.steps:
                window = turn.windows.get(f"{entry.stage}.{step.step}")
                attributes = {"parley.stage": entry.stage, "parley.step": step.step,
                              "parley.busy_ms": step.duration_ms, **_detail(step.detail)}  # fmt: skip
                if window is None:
                    window = (start, start + step.duration_ms / 1000)
                    attributes["parley.cumulative"] = True
                child = self.tracer.start_span(f"{entry.stage}.{step.step}", context=in_stage,
                                               start_time=ns(turn.timing.wall(window[0])),
                                               attributes=attributes)  # fmt: skip
                child.end(end_time=ns(turn.timing.wall(window[1])))
            stage.end(end_time=ns(turn.timing.wall(stop)))
        root.end(end_time=ns(turn.timing.wall(end)))

    def _turn_attributes(self, turn: Turn) -> dict[str, Any]:
        """OpenTelemetry's GenAI semantic conventions where they fit, `parley.*` for the rest."""
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat" if turn.kind == "chat" else "text_completion",
            "gen_ai.system": "parley",
            "gen_ai.request.model": turn.model,
            "gen_ai.response.id": turn.id,
            "gen_ai.usage.input_tokens": turn.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": turn.usage.completion_tokens,
            "parley.outcome": turn.outcome or "failed",
            "parley.cached_tokens": turn.usage.cached_tokens,
        }
        if turn.finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [turn.finish_reason]
        if turn.params is not None:
            attrs |= {"gen_ai.request.temperature": turn.params.temperature,
                      "gen_ai.request.max_tokens": turn.params.max_tokens, "gen_ai.request.top_p": turn.params.top_p}
        if turn.adapter is not None:
            attrs["parley.adapter"] = turn.adapter.name
        if turn.timing.ttft_s is not None:
            attrs["parley.ttft_ms"] = round(turn.timing.ttft_s * 1000, 3)
        verdicts = guard_actions(turn)
        if verdicts:
            attrs["parley.guard_verdicts"] = [f"{side}:{scanner}={action}" for side, scanner, action in verdicts]
        return attrs

    def close(self) -> None:
        self.provider.shutdown()  # flushes what is queued


def _detail(detail: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in detail.items() if k not in PRIVATE}
    if not kept:
        return {}
    return {"parley.detail": json.dumps(kept, default=str, ensure_ascii=False)[:DETAIL_LIMIT]}
