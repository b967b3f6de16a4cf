"""The upstream engine: any OpenAI-compatible server (vLLM, TGI, Ollama, llama-server, a hosted API) as the
model stage, with failover between its replicas and a circuit breaker per replica."""
