"""Watching a running server: Prometheus metrics (`metrics`), logs with request ids (`logs`) and OpenTelemetry
traces (`tracing`). All of it is recorded at the edges (an ASGI middleware, turn-end observers, scrape-time
reads), never inside the pipeline's stages."""
