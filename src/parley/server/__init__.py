"""HTTP: the FastAPI app, thin routes, error envelopes, request limits."""
