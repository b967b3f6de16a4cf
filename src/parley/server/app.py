"""The application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Route

from parley import __version__
from parley.agent.servers import McpServers
from parley.completion_log import CompletionLog
from parley.config import Settings
from parley.embeddings import EmbeddingService
from parley.engines.base import Engine
from parley.engines.registry import EngineRegistry
from parley.errors import ParleyError
from parley.guards.service import GuardsHolder
from parley.observability.logs import RequestContext, log_turn
from parley.observability.metrics import HttpMetrics, Metrics
from parley.params.tuner import Tuner
from parley.pipeline.postprocess import POSTPROCESS
from parley.pipeline.runner import Pipeline
from parley.profiles import ProfileError, Profiles
from parley.server.adapter_sync import AdapterSync
from parley.server.auth import AccessControl, RateLimitHeaders
from parley.server.drain import Drain, DrainState
from parley.server.errors import install_error_handlers
from parley.server.limits import BodySizeLimit
from parley.server.mcp import MCP_PATH, McpDoor, build_mcp
from parley.server.openapi import document_errors
from parley.server.ratelimit import Buckets, LocalBuckets, RedisBuckets
from parley.server.routes import admin, feedback, openai, service, stats, web
from parley.server.routes import embeddings as embeddings_routes
from parley.server.routes import moderations as moderations_routes
from parley.server.routes import profiles as profiles_routes
from parley.store.adapters import AdapterRepository
from parley.store.completions import CompletionRepository
from parley.store.db import Database
from parley.store.feedback import FeedbackRepository
from parley.store.keys import KeyRepository

log = logging.getLogger(__name__)


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """An app serving `engine`, or, when none is given, the model in `settings`, loaded at start-up."""
    registry = EngineRegistry()
    if engine is not None:
        registry.add(engine)
        registry.loading = False
    db = Database(settings.db_url(), migrate=settings.auto_migrate)
    guards = GuardsHolder(settings.guards, settings.guard_policy, settings.topic, settings.topic_threshold,
                          settings.link_allowlist, reader_nice=settings.guard_reader_nice)  # fmt: skip
    buckets: Buckets = RedisBuckets(settings.redis_url) if settings.redis_url else LocalBuckets()
    completions = CompletionRepository(db)
    completion_log = None
    if settings.completion_log:
        spill = settings.data_dir / "completion-log.spill.jsonl"
        completion_log = CompletionLog(completions, spill, retention_days=settings.log_retention_days)
    adapters = AdapterRepository(db)
    embedder = EmbeddingService(registry)
    tool_servers = McpServers(settings.mcp_servers)
    adapter_sync = AdapterSync(adapters, registry, settings.adapter_poll_seconds, settings.redis_url)
    metrics = Metrics()
    profiles = Profiles(settings.profiles_path(), check_model=lambda name: _check_model(registry, name),
                        steps=list(POSTPROCESS))  # fmt: skip
    feedback_repo = FeedbackRepository(db)
    tuner = Tuner(feedback_repo if settings.completion_log else None, explore=settings.params_explore)
    tracer = None
    if settings.otlp_endpoint:
        from parley.observability.tracing import TurnTracer

        tracer = TurnTracer(settings.otlp_endpoint, settings.otel_service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = None if engine is not None else asyncio.create_task(registry.load(settings.engine_specs()))
        guard_loader = asyncio.create_task(guards.load())
        if uses_grammar(settings, profiles):  # the spelling dictionary takes a second: not on a request
            from parley.pipeline.postprocess.grammar_spelling import preload

            asyncio.get_running_loop().run_in_executor(None, preload)
        syncing = asyncio.create_task(adapter_sync.run())
        mcp_sessions = mcp_server.session_manager.run()
        await mcp_sessions.__aenter__()
        tuning = asyncio.create_task(tuner.run())
        if completion_log is not None:
            completion_log.start()
        metrics_server = None
        if settings.metrics_port is not None:
            from prometheus_client import start_http_server

            metrics_server, _ = start_http_server(settings.metrics_port, settings.host, registry=metrics.registry)
        try:
            yield
        finally:
            await mcp_sessions.__aexit__(None, None, None)
            syncing.cancel()
            tuning.cancel()
            if metrics_server is not None:
                metrics_server.shutdown()
            if tracer is not None:
                await asyncio.to_thread(tracer.close)
            for task in (loader, guard_loader):
                if task is not None and not task.done():
                    await task
            if completion_log is not None:
                await asyncio.to_thread(completion_log.close)
            await tool_servers.close()
            registry.close()
            guards.close()
            embedder.close()
            await buckets.close()
            db.close()

    app = FastAPI(
        title="Parley",
        version=__version__,
        summary="OpenAI-compatible chat service with an explicit six-stage pipeline.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.embeddings = embedder
    app.state.tool_servers = tool_servers
    app.state.guards = guards
    pipeline = Pipeline(registry.resolve, settings, guards.get, profiles=profiles, tuner=tuner)
    access = AccessControl(KeyRepository(db), buckets)
    pipeline.turn_end.add(access.charge_turn)
    if completion_log is not None:
        pipeline.turn_end.add(completion_log.observe)
    pipeline.turn_end.add(metrics.observe_turn)
    pipeline.turn_end.add(log_turn)
    if tracer is not None:
        pipeline.turn_end.add(tracer.observe)
    metrics.watch(registry, access, completion_log, lambda: pipeline.turn_end.failures)
    app.state.metrics = metrics
    app.state.pipeline = pipeline
    app.state.access = access
    app.state.completions = completions
    app.state.completion_log = completion_log
    app.state.feedback = feedback_repo
    app.state.tuner = tuner
    app.state.adapters = adapters
    app.state.adapter_sync = adapter_sync
    app.state.profiles = profiles
    install_error_handlers(app)
    document_errors(app)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.drain = DrainState()
    app.add_middleware(Drain, state=app.state.drain)  # a draining server refuses before reading the body
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.add_middleware(RequestContext)  # outermost: every response, errors included, carries the request id
    app.include_router(openai.router)
    app.include_router(embeddings_routes.router)
    app.include_router(moderations_routes.router)
    app.include_router(service.router)
    app.include_router(admin.router)
    app.include_router(feedback.router)
    app.include_router(stats.router)
    app.include_router(profiles_routes.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files, name="static")
    mcp_server = build_mcp(app)
    mcp_app = mcp_server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True, json_response=True)
    app.router.routes.append(Route(MCP_PATH, McpDoor(mcp_app.routes[0].endpoint), methods=["GET", "POST", "DELETE"]))
    return app


def _check_model(registry: EngineRegistry, name: str) -> None:
    """A profile may name only a model or adapter that is served."""
    try:
        registry.resolve(name)
    except ParleyError as exc:
        raise ProfileError(f"model: {exc.message}") from exc


def uses_grammar(settings: Settings, profiles: Profiles) -> bool:
    return "grammar" in (settings.postprocess_steps or []) or any("grammar" in (p.steps or []) for p in profiles.all())
